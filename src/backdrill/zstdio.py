"""Small zstd helpers for in-memory documents (manifests, reports), and streaming
decompression of stored objects."""

from __future__ import annotations

from typing import IO

import zstandard

from backdrill.errors import IntegrityError


def compressed(data: bytes, level: int = 3) -> bytes:
    return bytes(zstandard.ZstdCompressor(level=level, write_checksum=True).compress(data))


def decompressed(data: bytes, where: str) -> bytes:
    try:
        return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(data))
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{where} is not a valid zstd stream: {exc}") from None


def decompress_stream(source: IO[bytes], sink: IO[bytes], where: str) -> int:
    """Decompress ``source`` into ``sink``; IntegrityError on a corrupt or truncated frame."""
    dctx = zstandard.ZstdDecompressor()
    try:
        _read, written = dctx.copy_stream(source, sink, read_size=1 << 20, write_size=1 << 20)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{where} is corrupt: {exc}") from None
    return int(written)
