"""What ``prune`` prunes: one *scope* per database, per filestore source, and the globals.

A scope lists its committed entries (each with its keys, commit marker first), the
entries it cannot read (which block every deletion), and the content objects its kept
entries reference (the filestore's ``files/objects/``, swept by mark-and-sweep).
Deleting an entry is the same for every scope (:func:`delete_entry`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, get_args

from backdrill.files.addrset import KeySet
from backdrill.files.chunks import EntryChunk, read_any_chunk
from backdrill.files.objects import entry_refs
from backdrill.files.snapshot import (
    CHUNKED_VERSIONS,
    LEGACY_VERSION,
    SHA256_PATTERN,
    StoredForm,
    check_location,
    object_key,
)
from backdrill.repository.catalog import BrokenEntry, DbListing
from backdrill.repository.documents import read_document
from backdrill.repository.layout import (
    DEFAULT_SOURCE,
    FILES_CHUNKS_ROOT,
    FILES_ROOT,
    MANIFEST_NAME,
    backup_dir,
    chunk_key,
    db_dir,
    db_scope_label,
    globals_root,
    id_time,
    pack_index_key,
    pack_key,
    snapshots_prefix,
    split_globals_key,
    split_snapshot_key,
)
from backdrill.repository.limits import MAX_SNAPSHOT_BYTES
from backdrill.repository.locks import db_scope, files_scope
from backdrill.repository.zstdio import decompressed
from backdrill.runtime.errors import BackdrillError, ExternalServiceError, IntegrityError
from backdrill.storage.base import ObjectInfo, Storage


@dataclass(frozen=True)
class Entry:
    id: str
    created_at: datetime
    #: the commit marker (manifest, snapshot) first, then the objects it commits
    keys: tuple[str, ...]
    size: int
    #: keys this entry references: content objects in ``files/objects/`` (schema_version
    #: 1 snapshots), entry chunks in ``files/chunks/`` (schema_version 2 and 3, whose
    #: chunks then reference the objects, packs and pack indexes: :meth:`FilesScope.mark`)
    refs: frozenset[str] = frozenset()


@dataclass
class ScopeListing:
    entries: list[Entry] = field(default_factory=list)
    broken: list[BrokenEntry] = field(default_factory=list)


class Scope(Protocol):
    @property
    def name(self) -> str:
        """Printable: ``db/odoo``, ``files/odoo``, ``globals``."""

    @property
    def lock_scope(self) -> str | None:
        """The lock the backups of this scope take (None: no backup locks it)."""

    @property
    def retention_source(self) -> str:
        """The PostgreSQL source whose retention applies (config ``sources:``)."""

    def listing(self) -> ScopeListing: ...

    def mark(self, kept: Iterable[Entry], marks: KeySet) -> None:
        """Add to ``marks`` every key under ``files/`` the ``kept`` entries reference."""


def db_scope_name(database: str, source: str = DEFAULT_SOURCE) -> str:
    """Printable: ``db/odoo``; of a named source ``sources/supabase/db/postgres``."""
    return db_scope_label(database, source)


def _size(objects: Mapping[str, ObjectInfo], keys: Iterable[str]) -> int:
    return sum(objects[k].size for k in keys if k in objects)


@dataclass(frozen=True)
class DbScope:
    database: str
    catalog: DbListing
    objects: Mapping[str, ObjectInfo]
    source: str = DEFAULT_SOURCE

    @property
    def name(self) -> str:
        return db_scope_name(self.database, self.source)

    @property
    def lock_scope(self) -> str:
        return db_scope(self.database, self.source)

    @property
    def retention_source(self) -> str:
        return self.source

    def listing(self) -> ScopeListing:
        result = ScopeListing()
        for manifest in self.catalog.backups:
            if manifest.database != self.database or manifest.source != self.source:
                continue
            prefix = backup_dir(manifest.database, manifest.id, manifest.source)
            marker = prefix + MANIFEST_NAME
            others = sorted(k for k in self.objects if k.startswith(prefix) and k != marker)
            keys = (marker, *others)
            result.entries.append(
                Entry(manifest.id, manifest.created_at, keys, _size(self.objects, keys))
            )
        prefix = db_dir(self.database, self.source)
        result.broken = [b for b in self.catalog.broken if b.key.startswith(prefix)]
        return result

    def mark(self, kept: Iterable[Entry], marks: KeySet) -> None:
        return None


@dataclass(frozen=True)
class GlobalsScope:
    """``globals/<id>.sql.zst``: roles and tablespaces, dated by the time in their id
    (of a named source, under its root: :func:`backdrill.repository.layout.globals_root`)."""

    objects: Mapping[str, ObjectInfo]
    source: str = DEFAULT_SOURCE

    @property
    def name(self) -> str:
        return globals_root(self.source).rstrip("/")

    @property
    def lock_scope(self) -> str | None:
        return None

    @property
    def retention_source(self) -> str:
        return self.source

    def listing(self) -> ScopeListing:
        result = ScopeListing()
        for key in sorted(self.objects):
            entry_id = split_globals_key(key, self.source)
            moment = id_time(entry_id) if entry_id else None
            if entry_id is None or moment is None:
                continue  # not ours: never touched
            result.entries.append(Entry(entry_id, moment, (key,), self.objects[key].size))
        return result

    def mark(self, kept: Iterable[Entry], marks: KeySet) -> None:
        return None


@dataclass(frozen=True)
class SnapshotRefs:
    created_at: datetime | None
    #: object keys (:func:`backdrill.files.snapshot.object_key`)
    objects: frozenset[str]


def _entry_ref(item: Any, where: str) -> tuple[str, ...]:
    """The keys of the content of one snapshot entry: its object, by its sha256 and its
    stored form (an encrypted object lives under its own ``.age`` key), or the pack it
    names and that pack's index."""
    pack = item.get("pack") if isinstance(item, dict) else None
    if pack is not None:
        if not isinstance(pack, str) or not re.fullmatch(SHA256_PATTERN, pack):
            raise IntegrityError(f"snapshot {where}: an entry's pack is not a pack id")
        return pack_key(pack), pack_index_key(pack)
    sha = item.get("sha256") if isinstance(item, dict) else None
    if not isinstance(sha, str):
        raise IntegrityError(f"snapshot {where}: an entry lacks sha256")
    if not re.fullmatch(SHA256_PATTERN, sha):
        raise IntegrityError(f"snapshot {where}: an entry's sha256 is not a content address")
    form = item.get("stored")
    if form is not None and form not in get_args(StoredForm):
        raise IntegrityError(f"snapshot {where}: an entry has an unknown stored form {form!r}")
    return (object_key(sha, form),)


def _chunk_refs(doc: dict[str, Any], where: str) -> set[str]:
    """The chunk keys of a schema_version 2 root."""
    refs: set[str] = set()
    for field_name in ("chunks", "skipped_chunks"):
        addresses = doc.get(field_name)
        if not isinstance(addresses, list):
            raise IntegrityError(f"snapshot {where} has no {field_name} list")
        for address in addresses:
            if not isinstance(address, str) or not re.fullmatch(SHA256_PATTERN, address):
                raise IntegrityError(f"snapshot {where}: a chunk address is not a sha256")
            refs.add(chunk_key(address))
    return refs


def parse_snapshot_refs(data: bytes, where: str) -> SnapshotRefs:
    """What prune needs of a filestore snapshot, read leniently (only what it needs):
    zstd-compressed JSON; schema_version 1: an ``entries`` list whose items carry
    ``sha256`` (and ``stored``, the form that names their object); schema_version 2:
    the ``chunks`` and ``skipped_chunks`` address lists. Valid where it lies: the id and
    source name it states (if any) are those of its key ``where``, its ``created_at``
    is not in the future (:func:`backdrill.files.snapshot.check_location`)."""
    try:
        doc = json.loads(decompressed(data, f"snapshot {where}", limit=MAX_SNAPSHOT_BYTES))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"snapshot {where} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise IntegrityError(f"snapshot {where} has no entries list")
    version = doc.get("schema_version", 1)
    if version in CHUNKED_VERSIONS:
        refs = _chunk_refs(doc, where)
    elif version == LEGACY_VERSION:
        if not isinstance(doc.get("entries"), list):
            raise IntegrityError(f"snapshot {where} has no entries list")
        refs = {
            ref
            for item in doc["entries"]
            # a symlink records its target, no content object
            if not (isinstance(item, dict) and item.get("type") == "symlink")
            for ref in _entry_ref(item, where)
        }
    else:
        raise IntegrityError(
            f"snapshot {where} has schema_version {version!r}; this reads 1, 2 and 3"
        )
    created: datetime | None = None
    if isinstance(doc.get("created_at"), str):
        try:
            created = datetime.fromisoformat(doc["created_at"].replace("Z", "+00:00"))
        except ValueError:
            raise IntegrityError(f"snapshot {where}: created_at is not a time") from None
    lies_at = split_snapshot_key(where)
    if lies_at is None:
        raise IntegrityError(f"snapshot {where} lies outside {snapshots_prefix('<source>')}")
    snapshot_id, source_name = doc.get("id", lies_at[1]), doc.get("source_name", lies_at[0])
    if not isinstance(snapshot_id, str) or not isinstance(source_name, str):
        raise IntegrityError(f"snapshot {where}: id and source_name must be strings")
    check_location(where, snapshot_id=snapshot_id, source_name=source_name, created_at=created)
    return SnapshotRefs(created, frozenset(refs))


def file_sources(objects: Mapping[str, ObjectInfo]) -> list[str]:
    return sorted({split[0] for key in objects if (split := split_snapshot_key(key))})


@dataclass(frozen=True)
class FilesScope:
    source: str
    storage: Storage
    objects: Mapping[str, ObjectInfo]

    @property
    def name(self) -> str:
        return f"{FILES_ROOT}{self.source}"

    @property
    def lock_scope(self) -> str:
        return files_scope(self.source)

    @property
    def retention_source(self) -> str:
        return DEFAULT_SOURCE  # the top-level retention

    def listing(self) -> ScopeListing:
        """Every snapshot, its root parsed and (schema_version 2) each of its chunks read
        and checked once: a snapshot with a missing or damaged chunk is broken, and
        blocks every deletion, like an unreadable root."""
        result = ScopeListing()
        checked: dict[str, str | None] = {}
        for key in sorted(self.objects):
            split = split_snapshot_key(key)
            if split is None or split[0] != self.source:
                continue
            snapshot_id = split[1]
            try:
                refs = parse_snapshot_refs(
                    read_document(self.storage, key, limit=MAX_SNAPSHOT_BYTES), key
                )
                self._check_chunks(refs.objects, key, checked)
            except ExternalServiceError:
                raise
            except BackdrillError as exc:
                result.broken.append(BrokenEntry(key, str(exc)))
                continue
            created = refs.created_at or id_time(snapshot_id)
            if created is None:
                result.broken.append(BrokenEntry(key, "no created_at and no time in its id"))
                continue
            result.entries.append(
                Entry(snapshot_id, created, (key,), self.objects[key].size, refs.objects)
            )
        return result

    def _check_chunks(
        self, refs: Iterable[str], where: str, checked: dict[str, str | None]
    ) -> None:
        for ref in sorted(refs):
            if not ref.startswith(FILES_CHUNKS_ROOT):
                continue
            if ref not in checked:
                try:
                    self._chunk_objects(ref, where)
                    checked[ref] = None
                except IntegrityError as exc:
                    checked[ref] = str(exc)
            if checked[ref] is not None:
                raise IntegrityError(f"snapshot {where}: {checked[ref]}")

    def _chunk_objects(self, ref: str, where: str) -> list[str]:
        """The object keys (loose objects, packs and their indexes) the chunk ``ref``
        references (read and checked whole)."""
        chunk = read_any_chunk(self.storage, ref.rsplit("/", 1)[-1], where)
        if not isinstance(chunk, EntryChunk):
            return []  # skipped entries reference nothing
        return [key for e in chunk.entries if e.type == "file" for key in entry_refs(e)]

    def mark(self, kept: Iterable[Entry], marks: KeySet) -> None:
        """Mark every object and chunk the kept snapshots reference; each distinct
        chunk is read once (memory: one chunk, the chunk keys, and ``marks`` on disk)."""
        chunks: set[str] = set()
        for entry in kept:
            marks.add_many((ref, 0) for ref in entry.refs)
            chunks.update(r for r in entry.refs if r.startswith(FILES_CHUNKS_ROOT))
        for ref in sorted(chunks):
            marks.add_many((key, 0) for key in self._chunk_objects(ref, ref))
