"""Streaming building blocks: count, hash and compress bytes on their way to storage,
never holding a whole dump in memory nor writing it to local disk."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import IO, Protocol

import zstandard

CHUNK = 1024 * 1024
#: zstd multi-threaded job size: small enough that memory plateaus after a few MB of
#: input (the default of 4 windows grows to ~55 MB at level 3), large enough to keep
#: both cores busy (benchmarks/ measures the trade-off)
ZSTD_JOB_SIZE = 4 * 1024 * 1024


class Sink(Protocol):
    def write(self, data: bytes) -> object: ...


class CountingReader:
    """Wraps a readable stream; counts bytes and reports them to ``on_bytes``."""

    def __init__(self, stream: IO[bytes], on_bytes: Callable[[int], None] | None = None) -> None:
        self._stream = stream
        self._on_bytes = on_bytes
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.count += len(data)
        if self._on_bytes is not None and data:
            self._on_bytes(len(data))
        return data


class HashingSink:
    """Forwards writes to ``sink`` while computing sha256 and counting bytes."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._hash = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.count += len(data)
        self._sink.write(data)
        return len(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def compression_threads(configured: int) -> int:
    return configured if configured > 0 else max(1, os.cpu_count() or 1)


def compress_stream(
    source: IO[bytes] | CountingReader, sink: Sink, *, level: int, threads: int
) -> None:
    """zstd-compress ``source`` into ``sink`` (multi-threaded, with a content checksum)."""
    params = zstandard.ZstdCompressionParameters.from_level(
        level, threads=threads, job_size=ZSTD_JOB_SIZE if threads >= 1 else 0, write_checksum=True
    )
    cctx = zstandard.ZstdCompressor(compression_params=params)
    cctx.copy_stream(source, sink, read_size=CHUNK, write_size=CHUNK)  # type: ignore[arg-type]
