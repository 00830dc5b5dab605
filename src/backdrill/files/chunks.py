"""The entry chunks of a schema_version 2 snapshot (docs/format.md).

A snapshot's entries, sorted by path, are cut into chunks; each chunk is a small
zstd-compressed JSON document stored once under ``files/chunks/xx/<sha256>``, the
sha256 of its stored bytes. A chunk ends after an entry whose path hashes to a multiple
of :data:`CUT_EVERY` (or at :data:`MAX_CHUNK_ENTRIES` / :data:`MAX_CHUNK_JSON`): the
cuts depend on the paths around them only, so a change in one directory rewrites the
chunk or two around it, and an unchanged night writes no chunk at all, only a new root.

Written and read as streams: one chunk in memory at a time. Every chunk read is
hostile: read within :data:`~backdrill.repository.limits.MAX_CHUNK_BYTES`, its sha256 checked
against its address, decompressed within the same bound, parsed strictly, every path
relative and contained (no ``..``, not absolute), paths strictly increasing across the
whole snapshot, and every file entry with a content address.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from backdrill.files.snapshot import FileEntry, SkippedEntry, Snapshot
from backdrill.files.source import safe_relative_path
from backdrill.repository.documents import read_document
from backdrill.repository.layout import chunk_key
from backdrill.repository.limits import MAX_CHUNK_BYTES, MAX_PACKED_BLOB_BYTES
from backdrill.repository.zstdio import compressed, decompressed
from backdrill.runtime.errors import IntegrityError, NotFound
from backdrill.storage import Storage

M = TypeVar("M", bound=BaseModel)
#: on average one chunk per CUT_EVERY entries
CUT_EVERY = 1024
MAX_CHUNK_ENTRIES = 4 * CUT_EVERY
#: a chunk is also cut once its entries' JSON reaches this (long paths)
MAX_CHUNK_JSON = 4 * 1024 * 1024
#: entries of the previous snapshot's latest chunks kept for reuse (:class:`RecentChunks`):
#: a chunk and the lag of the writer behind the reader (the backup's window and batch)
RECENT_ENTRIES = MAX_CHUNK_ENTRIES + 2048
#: fixed, so that the same entries always make the same chunk, whatever the config says
CHUNK_LEVEL = 3


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EntryChunk(_Strict):
    kind: Literal["files-entries"] = "files-entries"
    entries: list[FileEntry]


class SkippedChunk(_Strict):
    kind: Literal["files-skipped"] = "files-skipped"
    entries: list[SkippedEntry]


_ANY_CHUNK: TypeAdapter[EntryChunk | SkippedChunk] = TypeAdapter(
    Annotated[EntryChunk | SkippedChunk, Field(discriminator="kind")]
)


def cuts_after(path: str) -> bool:
    """Pure: whether a chunk ends after the entry of ``path`` (content-defined)."""
    return zlib.crc32(path.encode()) % CUT_EVERY == CUT_EVERY - 1


class RecentChunks:
    """The latest chunks of the previous snapshot as read and checked (address and
    entries), while a :class:`ChunkWriter` lagging behind the reader may still reach
    them; at most some :data:`RECENT_ENTRIES` entries held (memory bounded)."""

    def __init__(self) -> None:
        self._chunks: deque[tuple[str, list[FileEntry]]] = deque()
        #: id of a chunk's first entry -> the chunk (the entry is held, so is its id)
        self._by_first: dict[int, tuple[str, list[FileEntry]]] = {}
        self._held = 0

    def note(self, address: str, entries: list[FileEntry]) -> None:
        if not entries:
            return
        chunk = (address, entries)
        self._chunks.append(chunk)
        self._by_first[id(entries[0])] = chunk
        self._held += len(entries)
        while self._held > RECENT_ENTRIES and len(self._chunks) > 1:
            _address, dropped = self._chunks.popleft()
            del self._by_first[id(dropped[0])]
            self._held -= len(dropped)

    def starting_with(self, entry: FileEntry) -> tuple[str, list[FileEntry]] | None:
        """The chunk whose first entry is this very object, if still held."""
        chunk = self._by_first.get(id(entry))
        return chunk if chunk is not None and chunk[1][0] is entry else None


class ChunkWriter:
    """Collects entries in order and stores each full chunk at once (only when the
    repository lacks it: ``present`` says, from one listing of ``files/chunks/``)."""

    def __init__(
        self,
        storage: Storage,
        present: Callable[[str], bool],
        *,
        skipped: bool = False,
        recent: RecentChunks | None = None,
    ) -> None:
        self.storage = storage
        self.present = present
        self.skipped = skipped
        #: the previous snapshot's chunks as read: one whose every entry comes again, the
        #: very same objects in the same order, is reused by address (not re-encoded)
        self.recent = recent
        self.addresses: list[str] = []
        self.new_chunks = 0
        self.new_bytes = 0
        self.reused_chunks = 0
        self._lines: list[bytes] = []
        self._size = 0
        #: entries not yet serialized while they follow ``_streak`` (a previous chunk)
        self._held: list[FileEntry | SkippedEntry] = []
        self._streak: tuple[str, list[FileEntry]] | None = None

    def add(self, entry: FileEntry | SkippedEntry) -> None:
        streak = self._follows(entry)
        if streak is not None:
            self._held.append(entry)
            address, previous = streak
            # the same entries make the same lines, so the previous chunk's end is this
            # chunk's end too, provided today's rule cuts here (not its size rule)
            if len(self._held) == len(previous) and (
                cuts_after(entry.path) or len(self._held) >= MAX_CHUNK_ENTRIES
            ):
                self._reuse(address)
            return
        self._serialize_held()
        self._add_line(entry)

    def _follows(self, entry: FileEntry | SkippedEntry) -> tuple[str, list[FileEntry]] | None:
        """The previous chunk this chunk repeats so far, if ``entry`` is its next one."""
        if self.recent is None or self._lines or not isinstance(entry, FileEntry):
            return None
        if not self._held:
            self._streak = self.recent.starting_with(entry)
            return self._streak
        if self._streak is None:
            return None
        previous = self._streak[1]
        follows = len(self._held) < len(previous) and previous[len(self._held)] is entry
        return self._streak if follows else None

    def _reuse(self, address: str) -> None:
        self._held, self._streak = [], None
        self.addresses.append(address)
        self.reused_chunks += 1

    def _serialize_held(self) -> None:
        """The streak broke: the held entries take the ordinary way, in order."""
        held, self._held, self._streak = self._held, [], None
        for entry in held:
            self._add_line(entry)

    def _add_line(self, entry: FileEntry | SkippedEntry) -> None:
        line = entry.model_dump_json(exclude_defaults=True).encode()
        self._lines.append(line)
        self._size += len(line) + 1
        if (
            cuts_after(entry.path)
            or len(self._lines) >= MAX_CHUNK_ENTRIES
            or self._size >= MAX_CHUNK_JSON
        ):
            self._flush()

    def finish(self) -> list[str]:
        if self._streak is not None and len(self._held) == len(self._streak[1]):
            self._reuse(self._streak[0])  # the previous snapshot ended the same way
        self._serialize_held()
        if self._lines:
            self._flush()
        return self.addresses

    def _flush(self) -> None:
        kind = "files-skipped" if self.skipped else "files-entries"
        doc = b'{"kind":"' + kind.encode() + b'","entries":[' + b",".join(self._lines) + b"]}"
        self._lines, self._size = [], 0
        data = compressed(doc, CHUNK_LEVEL)
        address = hashlib.sha256(data).hexdigest()
        key = chunk_key(address)
        if not self.present(key):
            self.storage.put_bytes(key, data)
            self.new_chunks += 1
            self.new_bytes += len(data)
        self.addresses.append(address)


def read_chunk_bytes(storage: Storage, address: str, where: str) -> bytes:
    """The decompressed JSON of one chunk, its address verified; IntegrityError naming
    the snapshot ``where`` otherwise (a missing chunk too)."""
    key = chunk_key(address)
    try:
        data = read_document(storage, key, limit=MAX_CHUNK_BYTES)
    except NotFound:
        raise IntegrityError(f"snapshot {where}: chunk {key} is missing") from None
    if hashlib.sha256(data).hexdigest() != address:
        raise IntegrityError(f"snapshot {where}: chunk {key} does not match its address")
    return decompressed(data, f"snapshot {where}: chunk {key}", limit=MAX_CHUNK_BYTES)


def _parse(model: type[M], raw: bytes, where: str, key: str) -> M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = " -> ".join(str(p) for p in err["loc"])
        raise IntegrityError(f"snapshot {where}: chunk {key}: {loc}: {err['msg']}") from None


def read_any_chunk(storage: Storage, address: str, where: str) -> EntryChunk | SkippedChunk:
    """A chunk of either kind (prune marks without knowing which a key is), checked."""
    raw = read_chunk_bytes(storage, address, where)
    try:
        chunk = _ANY_CHUNK.validate_json(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = " -> ".join(str(p) for p in err["loc"])
        raise IntegrityError(
            f"snapshot {where}: chunk {chunk_key(address)}: {loc}: {err['msg']}"
        ) from None
    if isinstance(chunk, EntryChunk):
        _check_entries(chunk.entries, where)
    return chunk


def read_entry_chunk(storage: Storage, address: str, where: str) -> list[FileEntry]:
    raw = read_chunk_bytes(storage, address, where)
    entries = _parse(EntryChunk, raw, where, chunk_key(address)).entries
    _check_entries(entries, where)
    return entries


def _check_entries(entries: list[FileEntry], where: str) -> None:
    for entry in entries:
        if not safe_relative_path(entry.path):
            raise IntegrityError(f"snapshot {where}: unsafe path {entry.path!r}")
        if entry.type == "file" and entry.sha256 is None:
            raise IntegrityError(f"snapshot {where}: file {entry.path!r} lacks sha256")
        if (problem := packed_entry_problem(entry)) is not None:
            raise IntegrityError(f"snapshot {where}: file {entry.path!r} {problem}")


def packed_entry_problem(entry: FileEntry) -> str | None:
    """Pure: why an entry naming a pack (or an offset) is malformed, or None. A packed
    entry has its sha256, stored form, stored size (within one blob's limit) and offset."""
    if entry.pack is None:
        return "has an offset but no pack" if entry.offset is not None else None
    if entry.type != "file" or entry.sha256 is None or entry.stored is None:
        return "names a pack but lacks its sha256 or stored form"
    if entry.offset is None or entry.stored_size is None:
        return "names a pack but lacks its offset or stored size"
    if entry.stored_size > MAX_PACKED_BLOB_BYTES:
        return f"names a blob of {entry.stored_size} bytes, over {MAX_PACKED_BLOB_BYTES}"
    return None


def iter_entries(
    storage: Storage, snapshot: Snapshot, recent: RecentChunks | None = None
) -> Iterator[FileEntry]:
    """Every entry of ``snapshot`` in path order, one chunk in memory at a time
    (schema_version 1: its inline entries). IntegrityError naming the snapshot when a
    chunk is missing, damaged or out of order. Each chunk, once checked whole, is noted
    in ``recent`` before its entries are yielded."""
    if snapshot.chunks is None:
        yield from snapshot.entries
        return
    where = snapshot.key()
    last = ""
    for address in snapshot.chunks:
        entries = read_entry_chunk(storage, address, where)
        for entry in entries:
            if entry.path <= last:
                raise IntegrityError(
                    f"snapshot {where}: {entry.path!r} is out of order or recorded twice"
                )
            last = entry.path
        if recent is not None:
            recent.note(address, entries)
        yield from entries


def skipped_chunk(storage: Storage, address: str, where: str) -> list[SkippedEntry]:
    raw = read_chunk_bytes(storage, address, where)
    return _parse(SkippedChunk, raw, where, chunk_key(address)).entries


def iter_skipped(storage: Storage, snapshot: Snapshot) -> Iterator[SkippedEntry]:
    """The entries the backup skipped, with why."""
    if snapshot.skipped_chunks is None:
        yield from snapshot.skipped
        return
    for address in snapshot.skipped_chunks:
        yield from skipped_chunk(storage, address, snapshot.key())


def iter_files(storage: Storage, snapshot: Snapshot) -> Iterator[FileEntry]:
    return (e for e in iter_entries(storage, snapshot) if e.type == "file")
