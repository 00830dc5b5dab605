"""zstd helpers, and THE bounded reader: every decompression of repository bytes goes
through :func:`bounded_reader` (a stored object, whose recorded size is known before
its first byte is read) or :func:`decompressed` (an in-memory document), which stop at
once, with an IntegrityError naming the object, when more comes out than the limit."""

from __future__ import annotations

import io
from typing import IO, Protocol, cast

import zstandard

from backdrill.repository.streams import CHUNK
from backdrill.runtime.errors import IntegrityError


def compressed(data: bytes, level: int = 3) -> bytes:
    return bytes(zstandard.ZstdCompressor(level=level, write_checksum=True).compress(data))


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class BoundedReader:
    """Reads ``source`` (decompressing it when ``zstd``), never yielding more than
    ``limit`` bytes in all: asked for more, it reads one byte past the limit at most and
    raises IntegrityError (``what`` names the object). A corrupt zstd stream is an
    IntegrityError too. ``count``: the bytes yielded so far."""

    def __init__(
        self, source: Readable, *, limit: int, what: str, zstd: bool, recorded: bool = True
    ) -> None:
        self._what = what
        self._recorded = recorded
        self._limit = limit
        self._zstd = zstd
        self.count = 0
        self._source: Readable = source
        if zstd:
            self._source = zstandard.ZstdDecompressor().stream_reader(
                cast(IO[bytes], source), read_size=CHUNK, closefd=False, read_across_frames=True
            )

    def read(self, size: int = -1) -> bytes:
        room = self._limit - self.count + 1  # one byte more tells a bomb from a fit
        want = room if size < 0 else min(size, room)
        try:
            data = self._source.read(want)
        except zstandard.ZstdError as exc:
            recorded = "; the stored object does not match its record" if self._recorded else ""
            raise IntegrityError(
                f"{self._what} is corrupt: not a valid zstd stream ({exc}){recorded}"
            ) from None
        self.count += len(data)
        if self.count > self._limit:
            grows = "decompresses to" if self._zstd else "holds"
            bound = "recorded for it" if self._recorded else "its kind may hold"
            raise IntegrityError(
                f"{self._what} {grows} more than the {self._limit} bytes {bound} "
                "(a decompression bomb or a replaced object); stopped there"
            )
        return data


def bounded_reader(
    source: Readable, *, limit: int, what: str, zstd: bool = True, recorded: bool = True
) -> BoundedReader:
    """``source`` read (and zstd-decompressed when ``zstd``) up to ``limit`` bytes:
    the size recorded for it, or (``recorded`` False) the limit of a kind of document."""
    return BoundedReader(source, limit=limit, what=what, zstd=zstd, recorded=recorded)


def read_all(reader: BoundedReader) -> bytes:
    """Everything ``reader`` yields, in chunks (bounded by its limit)."""
    out = bytearray()
    while chunk := reader.read(CHUNK):
        out += chunk
    return bytes(out)


def decompressed(data: bytes, where: str, *, limit: int) -> bytes:
    """The zstd-compressed document ``data``, decompressed up to ``limit`` bytes."""
    return read_all(bounded_reader(io.BytesIO(data), limit=limit, what=where, recorded=False))
