"""A set of keys (each with a size) on a temporary SQLite file: memory bounded by its
page cache whatever the count, for the millions of content addresses a filestore
has (the objects a backup may reuse, the objects a prune keeps, a verify's checks).
Thread-safe; deleted on :meth:`close`."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Iterator

#: pages of the cache (KiB each with a 4 KiB page: -N is KiB): some 16 MiB
_CACHE = "-16384"
_BATCH = 10_000
#: keys looked up per query by :meth:`KeySet.get_many` (under SQLite's variable limit)
_LOOKUP_BATCH = 500
#: keys added one by one (:meth:`KeySet.add`) held in memory before one transaction
_PENDING = 256
#: bits of the filter of a set of content addresses (4 MiB): a lookup of an address
#: whose bit is clear (most new contents: ~3 % false positives at 1,000,000) needs no query
_FILTER_BITS = 1 << 25


def _bit(key: str) -> int:
    """The filter bit of a content address (hex: its first 8 digits); -1 otherwise."""
    try:
        return int(key[:8], 16) & (_FILTER_BITS - 1)
    except ValueError:
        return -1


class KeySet:
    """``addresses``: the keys are sha256 hex digests, looked up through a filter of
    :data:`_FILTER_BITS` bits first (memory: 4 MiB)."""

    def __init__(self, *, addresses: bool = False) -> None:
        self._filter = bytearray(_FILTER_BITS // 8) if addresses else None
        fd, self._path = tempfile.mkstemp(prefix="backdrill-keys-", suffix=".sqlite")
        os.close(fd)
        self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        self._db.execute(f"PRAGMA cache_size={_CACHE}")
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE k (key TEXT PRIMARY KEY, size INTEGER, note TEXT) WITHOUT ROWID"
        )
        self._lock = threading.Lock()
        self._count = 0
        #: keys added one by one, not yet inserted (seen by every lookup)
        self._pending: dict[str, tuple[int, str]] = {}

    @property
    def count(self) -> int:
        with self._lock:
            self._flush_locked()
            return self._count

    def add_many(self, items: Iterable[tuple[str, int]]) -> None:
        """Insert (key, size); a key already there keeps its first size."""
        self.add_noted((key, size, "") for key, size in items)

    def add_noted(self, items: Iterable[tuple[str, int, str]]) -> None:
        """Insert (key, size, note); a key already there keeps its first size and note."""
        batch: list[tuple[str, int, str]] = []
        for item in items:
            batch.append(item)
            if len(batch) >= _BATCH:
                self._insert(batch)
                batch = []
        if batch:
            self._insert(batch)

    def _insert(self, batch: list[tuple[str, int, str]]) -> None:
        with self._lock:
            self._flush_locked()
            self._insert_locked(batch)

    def _note_bits(self, keys: Iterable[str]) -> None:
        if self._filter is not None:
            for key in keys:
                bit = _bit(key)
                if bit >= 0:
                    self._filter[bit >> 3] |= 1 << (bit & 7)

    def _absent(self, key: str) -> bool:
        """Surely not in the set (the filter's bit of ``key`` is clear)."""
        if self._filter is None:
            return False
        bit = _bit(key)
        return bit >= 0 and not self._filter[bit >> 3] & (1 << (bit & 7))

    def _insert_locked(self, batch: list[tuple[str, int, str]]) -> None:
        self._note_bits(key for key, _size, _note in batch)
        before = self._db.total_changes
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR IGNORE INTO k VALUES (?, ?, ?)", batch)
        self._db.execute("COMMIT")
        self._count += self._db.total_changes - before

    def _flush_locked(self) -> None:
        if self._pending:
            batch = [(key, size, note) for key, (size, note) in self._pending.items()]
            self._insert_locked(batch)
            self._pending = {}

    def add(self, key: str, size: int, note: str = "") -> None:
        """Insert one key (held with a few hundred others, then inserted at once: one
        transaction per key would cost more than the lookup it serves)."""
        self._note_bits((key,))
        with self._lock:
            self._pending.setdefault(key, (size, note))
            if len(self._pending) >= _PENDING:
                self._flush_locked()

    def get(self, key: str) -> int | None:
        if self._absent(key):
            return None
        with self._lock:
            held = self._pending.get(key)
            if held is not None:
                return held[0]
            row = self._db.execute("SELECT size FROM k WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def get_noted(self, key: str) -> tuple[int, str] | None:
        """(size, note) of ``key``, or None."""
        if self._absent(key):
            return None
        with self._lock:
            held = self._pending.get(key)
            if held is not None:
                return held
            row = self._db.execute("SELECT size, note FROM k WHERE key = ?", (key,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def get_many(self, keys: Iterable[str]) -> dict[str, int]:
        """key -> size of those of ``keys`` in the set (absent ones are left out): one
        query per :data:`_LOOKUP_BATCH` keys, not one per key."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, int] = {}
        for start in range(0, len(wanted), _LOOKUP_BATCH):
            part = wanted[start : start + _LOOKUP_BATCH]
            marks = ",".join("?" * len(part))
            with self._lock:
                self._flush_locked()
                rows = self._db.execute(
                    f"SELECT key, size FROM k WHERE key IN ({marks})",
                    part,
                ).fetchall()
            found.update((str(key), int(size)) for key, size in rows)
        return found

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def items(self) -> Iterator[tuple[str, int, str]]:
        """Every (key, size, note) in key order, read in pages (no lock held between)."""
        last = ""
        while True:
            with self._lock:
                self._flush_locked()
                rows = self._db.execute(
                    "SELECT key, size, note FROM k WHERE key > ? ORDER BY key LIMIT ?",
                    (last, _BATCH),
                ).fetchall()
            if not rows:
                return
            for key, size, note in rows:
                yield str(key), int(size), str(note)
            last = rows[-1][0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)

    def __enter__(self) -> KeySet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
