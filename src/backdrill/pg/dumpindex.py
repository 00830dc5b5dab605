"""Give a streamed custom-format dump the data offsets pg_dump could not write.

pg_dump writing to a pipe cannot seek back to fill in where each table's data starts,
so its table of contents says "position not set" for every data block. pg_restore copes
by scanning: each parallel worker hops over the blocks before the one it wants, one
chunk (one row) at a time, a ``read`` per row. On an Odoo database that costs more CPU
than the restore's own reading, on a machine where the server needs every core.

:class:`DumpIndexer` watches the decompressed stream as the download writes it and
finds the data blocks. The TOC gives the ids of the blocks to expect; in an
uncompressed dump (``-Z0``, what ``backup db`` runs) a block ends with a zero-length
chunk right after a row's newline, and COPY text holds no NUL byte, so the end of a
block followed by the next block's header is a pattern that occurs nowhere else; every
candidate is checked against the TOC anyway. :meth:`DumpIndexer.patches` then says
which bytes of the TOC to overwrite: the same offsets pg_dump writes into a seekable
file. Anything unexpected (another archive version, compressed data, large objects, a
block out of place) turns the indexer off, and the dump is restored as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAGIC = b"PGDMP"
CUSTOM_FORMAT = 1
#: archive versions indexed: 1.14 is what pg_dump 12 to 15 write, the one tested here.
#: Others (pg_dump 16 writes 1.15) are restored as they are, unindexed
KNOWN_VERSIONS = {(1, 14)}
BLK_DATA = 1
POS_NOT_SET, POS_SET, NO_DATA = 1, 2, 3
MAX_TOC_BYTES = 64 * 1024 * 1024


class _NeedMore(Exception):
    """The buffer ends before the structure being parsed."""


class _Unsupported(Exception):
    """Not a dump this module can index; it is restored unchanged."""


@dataclass(frozen=True)
class TocEntry:
    dump_id: int
    desc: str
    flag: int
    #: absolute file position of the entry's offset field (flag byte + offset bytes)
    offset_field: int


@dataclass(frozen=True)
class Toc:
    int_size: int
    off_size: int
    entries: list[TocEntry]
    #: absolute position right after the TOC: where the first data block starts
    end: int


class _Reader:
    """pg_dump's archive primitives (ReadInt, ReadStr, ReadOffset) over a buffer,
    from ``pos``; a TOC holds about 15 fields per object, so these stay lean."""

    def __init__(self, data: bytes | bytearray, pos: int = 0, int_size: int = 4) -> None:
        self.data = data
        self.pos = pos
        self.int_size = int_size

    def _need(self, n: int) -> int:
        start = self.pos
        self.pos += n
        if self.pos > len(self.data):
            raise _NeedMore
        return start

    def take(self, n: int) -> bytes:
        start = self._need(n)
        return bytes(self.data[start : self.pos])

    def byte(self) -> int:
        return self.data[self._need(1)]

    def int(self) -> int:
        start = self._need(1 + self.int_size)
        value = int.from_bytes(self.data[start + 1 : self.pos], "little")
        return -value if self.data[start] else value

    def skip_str(self) -> bool:
        """Skip a string; False for the NULL string."""
        length = self.int()
        if length < 0:
            return False
        self._need(length)
        return True

    def str(self) -> str | None:
        length = self.int()
        if length < 0:
            return None
        return self.take(length).decode("utf-8", "replace")


class TocParser:
    """Parses the header and TOC of a custom-format archive as its bytes arrive: call
    :meth:`parse` with the growing buffer; each entry is read once (an entry cut off
    by the end of the buffer is read again, whole, next time)."""

    def __init__(self) -> None:
        self._pos = 0
        self._int_size = 4
        self._off_size = 8
        self._count: int | None = None
        self._entries: list[TocEntry] = []

    def parse(self, data: bytes | bytearray) -> Toc | None:
        """The TOC once ``data`` holds all of it, else None; _Unsupported when the
        archive is not one this module knows."""
        r = _Reader(data, self._pos, self._int_size)
        try:
            if self._count is None:
                self._count = self._header(r)
                self._pos = r.pos
            while len(self._entries) < self._count:
                self._entries.append(self._entry(r))
                self._pos = r.pos
        except _NeedMore:
            return None
        return Toc(self._int_size, self._off_size, self._entries, self._pos)

    def _header(self, r: _Reader) -> int:
        """Read the header; the number of TOC entries that follow it."""
        if r.take(len(MAGIC)) != MAGIC:
            raise _Unsupported("not a pg_dump custom-format archive")
        version = (r.byte(), r.byte())
        r.byte()  # revision
        if version not in KNOWN_VERSIONS:
            raise _Unsupported(f"archive version {version[0]}.{version[1]}")
        r.int_size = r.byte()
        off_size = r.byte()
        if r.byte() != CUSTOM_FORMAT:
            raise _Unsupported("not the custom format")
        if r.int() != 0:  # the zlib level: 0 means uncompressed data blocks
            raise _Unsupported("compressed data blocks")
        for _ in range(7):  # the dump's time: sec, min, hour, mday, mon, year, isdst
            r.int()
        for _ in range(3):  # database name, server version, pg_dump version
            r.skip_str()
        self._int_size, self._off_size = r.int_size, off_size
        return r.int()

    def _entry(self, r: _Reader) -> TocEntry:
        dump_id = r.int()
        r.int()  # had a data dumper
        for _field in range(3):  # catalog id (table oid, oid), tag
            r.skip_str()
        desc = r.str() or ""
        r.int()  # section
        for _field in range(8):  # defn, drop, copy, namespace, tablespace, table AM,
            r.skip_str()  # owner, "false" (WITH OIDS)
        while r.skip_str():  # dependencies, a NULL string ends them
            pass
        offset_field = r.pos
        flag = r.byte()
        r.take(self._off_size)
        if flag not in (POS_NOT_SET, POS_SET, NO_DATA):
            raise _Unsupported(f"TOC entry {dump_id}: data offset flag {flag}")
        return TocEntry(dump_id, desc, flag, offset_field)


def parse_toc(data: bytes | bytearray) -> Toc:
    """The header and TOC at the start of ``data``, which must hold all of it."""
    toc = TocParser().parse(data)
    if toc is None:
        raise _Unsupported("the TOC is cut off")
    return toc


class DumpIndexer:
    """Feed it the archive's bytes in order; :meth:`patches` at the end.

    pg_dump writes the data blocks in TOC order, so the indexer always knows which
    block comes next and searches for exactly its header behind the end of the block
    before: a long needle, found at C speed (about 3 GB/s here).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._base = 0  # absolute position of _buf[0]
        self._toc: Toc | None = None
        self._pending: list[TocEntry] = []  # data blocks, in TOC (= file) order
        self._found: list[int] = []  # position of each block found so far
        self._due: int | None = None  # the next header must start exactly here
        self._body: int | None = None  # a block just found: is it empty?
        self._toc_parser = TocParser()
        self._off = False
        self.why = ""

    def feed(self, data: bytes) -> None:
        if self._off:
            return
        self._buf += data
        try:
            if self._toc is None:
                self._read_toc()
            if self._toc is not None:
                self._scan()
        except _Unsupported as exc:
            self._stop(str(exc))

    def _stop(self, why: str) -> None:
        self._off, self.why = True, why
        self._buf = bytearray()
        log.debug("dump not indexed: %s", why)

    def _read_toc(self) -> None:
        toc = self._toc_parser.parse(self._buf)
        if toc is None:
            if len(self._buf) > MAX_TOC_BYTES:
                raise _Unsupported("TOC larger than 64 MB")
            return
        pending = [e for e in toc.entries if e.flag == POS_NOT_SET]
        if any(e.flag == POS_SET for e in toc.entries) or not pending:
            raise _Unsupported("the offsets are already set, or there is no data")
        if any(e.desc != "TABLE DATA" for e in pending):
            raise _Unsupported("data blocks other than table data (large objects?)")
        self._toc, self._pending, self._due = toc, pending, toc.end

    def _int(self, value: int) -> bytes:
        """An int as WriteInt stores it: a sign byte, then little-endian bytes."""
        assert self._toc is not None
        return b"\x00" + value.to_bytes(self._toc.int_size, "little")

    def _header(self, entry: TocEntry) -> bytes:
        return bytes([BLK_DATA]) + self._int(entry.dump_id)

    @property
    def _end_marker(self) -> bytes:
        """How a non-empty block ends: a row's newline, then a zero-length chunk."""
        return b"\n" + self._int(0)

    def _scan(self) -> None:
        zero = self._int(0)
        while True:
            if self._body is not None:  # a block found: empty if its first chunk is 0
                rel = self._body - self._base
                if len(self._buf) < rel + len(zero):
                    return
                if self._buf[rel : rel + len(zero)] == zero:
                    self._due = self._body + len(zero)
                self._drop(rel)
                self._body = None
            if len(self._found) == len(self._pending):
                self._drop(max(0, len(self._buf) - len(self._end_marker)))
                return
            header = self._header(self._pending[len(self._found)])
            if self._due is not None:
                rel = self._due - self._base
                if len(self._buf) < rel + len(header):
                    return
                if self._buf[rel : rel + len(header)] != header:
                    raise _Unsupported(f"data block expected at {self._due} is not there")
                position, self._due = self._due, None
            else:
                needle = self._end_marker + header
                hit = self._buf.find(needle)
                if hit < 0:
                    self._drop(max(0, len(self._buf) - len(needle) + 1))
                    return
                position = self._base + hit + len(self._end_marker)
            self._found.append(position)
            self._body = position + len(header)

    def _drop(self, n: int) -> None:
        del self._buf[:n]
        self._base += n

    def patches(self, total_size: int, tail: bytes) -> list[tuple[int, bytes]]:
        """(file position, bytes) to write over the TOC: every data block's offset;
        none when the indexer turned off or the blocks did not add up. ``tail`` holds
        the last bytes of the file, where the last block must end."""
        if self._off or self._toc is None:
            return []
        if len(self._found) != len(self._pending):
            self._stop(f"{len(self._pending) - len(self._found)} data blocks not found")
            return []
        zero = self._int(0)
        last_body = self._found[-1] + len(self._header(self._pending[-1]))
        if not (tail.endswith(self._end_marker) or total_size == last_body + len(zero)):
            self._stop("the archive does not end with its last data block")
            return []
        off_size = self._toc.off_size
        return [
            (entry.offset_field, bytes([POS_SET]) + position.to_bytes(off_size, "little"))
            for entry, position in zip(self._pending, self._found, strict=True)
        ]
