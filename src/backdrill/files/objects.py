"""Content-addressed objects: ``files/objects/<sha256[0:2]>/<sha256>``, each stored once,
zstd-compressed when that makes it smaller.

Writing: a file's bytes are spooled (in memory up to a few MB, then a temporary file)
while hashed; only a content the repository lacks is compressed and uploaded.
Reading: an object is streamed, decompressed, counted and re-hashed; any difference
from its entry is an :class:`IntegrityError` naming the file.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, cast

import zstandard

from backdrill.errors import IntegrityError, NotFound
from backdrill.files.snapshot import OBJECTS_PREFIX, FileEntry, StoredForm, object_key
from backdrill.storage import Storage
from backdrill.streams import CHUNK

SPOOL_IN_MEMORY = 2 * 1024 * 1024


def stored_objects(storage: Storage) -> dict[str, int]:
    """sha256 -> stored size of every object in the repository: ONE listing pass."""
    found: dict[str, int] = {}
    for info in storage.list_objects(OBJECTS_PREFIX):
        name = info.key.rsplit("/", 1)[-1]
        if len(name) == 64 and info.key == object_key(name):
            found[name] = info.size
    return found


def new_spool() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, prefix="backdrill-")


@dataclass(frozen=True)
class StoredObject:
    form: StoredForm
    stored_size: int


class ObjectStore:
    """The objects of one repository during a backup: those listed at the start plus
    those uploaded since. Thread-safe; a content is claimed by one uploader only."""

    def __init__(self, storage: Storage, stored: dict[str, int], *, level: int = 3) -> None:
        self.storage = storage
        self.level = level
        self._stored = dict(stored)
        self._claimed: set[str] = set()
        self._lock = threading.Lock()
        self._local = threading.local()
        self.new_objects = 0
        self.new_bytes = 0
        self.uploaded_bytes = 0

    def stored_size(self, sha256: str) -> int:
        with self._lock:
            return self._stored[sha256]

    def claim(self, sha256: str) -> bool:
        """True if the caller must upload this content; False if it is (being) stored."""
        with self._lock:
            if sha256 in self._stored or sha256 in self._claimed:
                return False
            self._claimed.add(sha256)
            return True

    def upload(self, sha256: str, raw: IO[bytes], raw_size: int) -> StoredObject:
        """Store the spooled content ``raw`` (positioned anywhere) under its address."""
        raw.seek(0)
        with new_spool() as packed:
            compressor = getattr(self._local, "compressor", None)
            if compressor is None:  # a zstd context per thread: creating one is costly
                compressor = zstandard.ZstdCompressor(level=self.level, write_checksum=True)
                self._local.compressor = compressor
            if raw_size <= SPOOL_IN_MEMORY:
                packed.write(compressor.compress(raw.read()))
            else:
                compressor.copy_stream(raw, packed, read_size=CHUNK, write_size=CHUNK)
            packed_size = packed.tell()
            body = packed if packed_size < raw_size else raw
            size = packed_size if body is packed else raw_size
            body.seek(0)
            with self.storage.open_writer(object_key(sha256)) as writer:
                while chunk := body.read(CHUNK):
                    writer.write(chunk)
        with self._lock:
            self._stored[sha256] = size
            self.new_objects += 1
            self.new_bytes += raw_size
            self.uploaded_bytes += size
        return StoredObject("zstd" if body is packed else "raw", size)


def copy_object(
    storage: Storage,
    entry: FileEntry,
    sink: Callable[[bytes], object],
    on_bytes: Callable[[int], None] | None = None,
) -> None:
    """Stream the content of ``entry`` into ``sink``, verifying the stored size, the size
    and the sha256 of the content. IntegrityError naming the file when anything differs."""
    assert entry.sha256 is not None
    key = object_key(entry.sha256)
    where = f"file {entry.path}"
    try:
        stream = storage.open_reader(key)
    except NotFound:
        raise IntegrityError(f"{where}: object {key} is missing from the repository") from None
    digest = hashlib.sha256()
    counted = _CountingStream(stream)
    size = 0
    with stream:
        source: IO[bytes] = cast(IO[bytes], counted)
        if entry.stored == "zstd":
            source = zstandard.ZstdDecompressor().stream_reader(
                source, read_size=CHUNK, closefd=False
            )
        try:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                sink(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"{where}: object {key} is corrupt: {exc}") from None
    if entry.stored_size is not None and counted.count != entry.stored_size:
        raise IntegrityError(
            f"{where}: object {key} has {counted.count} bytes, expected {entry.stored_size}"
        )
    if size != entry.size or digest.hexdigest() != entry.sha256:
        raise IntegrityError(f"{where}: content of object {key} does not match its sha256")


class _CountingStream:
    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.count += len(data)
        return data
