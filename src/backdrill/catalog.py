"""The repository's catalogue of committed backups, read from manifests.

A backup exists only when its manifest does. Unreadable manifests, and manifests not
valid where they lie (:func:`backdrill.manifest.check_where_it_lies`), are collected, not
skipped silently (Barman's catalog), so that prune can refuse to act while any exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote

from backdrill.documents import read_document
from backdrill.errors import BackdrillError, IntegrityError, UsageError
from backdrill.limits import MAX_MANIFEST_BYTES
from backdrill.manifest import (
    DB_ROOT,
    MANIFEST_NAME,
    DbManifest,
    backup_dir,
    db_dir,
    parse_db_manifest,
    source_root,
    split_source,
)
from backdrill.selection import Words, select
from backdrill.sources import attempt_scope
from backdrill.storage import Storage

__all__ = [
    "BACKUP_WORDS",
    "DB_ROOT",
    "BrokenEntry",
    "DbListing",
    "backup_dir",
    "db_dir",
    "list_db_backups",
    "select_backup",
]


@dataclass(frozen=True)
class BrokenEntry:
    key: str
    reason: str


@dataclass
class DbListing:
    backups: list[DbManifest] = field(default_factory=list)
    broken: list[BrokenEntry] = field(default_factory=list)
    #: (database, backup id, source) of directories holding objects but no manifest
    uncommitted: list[tuple[str, str, str]] = field(default_factory=list)

    def databases(self) -> list[str]:
        return sorted({m.database for m in self.backups})

    def groups(self) -> list[tuple[str, str]]:
        """(source, database) of every database with a committed backup, sorted."""
        return sorted({(m.source, m.database) for m in self.backups})

    def refuse_broken(self, backup_id: str) -> None:
        """IntegrityError (exit 4) naming the manifest when the backup asked for by id
        has an unreadable or misplaced one: the problem, not "no such backup"."""
        for broken in self.broken:
            if broken.key.split("/")[-2:-1] == [backup_id]:
                raise IntegrityError(broken.reason)


def split_key(key: str) -> tuple[str, str, str, str] | None:
    """Pure: (source, database, backup id, object name) of a key of a backup's directory."""
    found = split_source(key)
    if found is None:
        return None
    source, rest = found
    parts = rest[len(DB_ROOT) :].split("/")
    if len(parts) != 3:
        return None
    return source, unquote(parts[0]), parts[1], parts[2]


def _prefixes(database: str | None, source: str | None) -> list[str]:
    if source is not None:
        return [db_dir(database, source) if database else source_root(source) + DB_ROOT]
    if database:
        return [db_dir(database), source_root("")]
    return [DB_ROOT, source_root("")]


def list_db_backups(
    storage: Storage, database: str | None = None, source: str | None = None
) -> DbListing:
    """Every committed database backup (of ``source``, None: of every source), oldest
    first, with broken and uncommitted ones."""
    dirs: dict[tuple[str, str, str], set[str]] = {}
    for prefix in _prefixes(database, source):
        for info in storage.list_objects(prefix):
            split = split_key(info.key)
            if split is None or (database is not None and split[1] != database):
                continue
            src, db, backup_id, name = split
            dirs.setdefault((src, db, backup_id), set()).add(name)
    listing = DbListing()
    for (src, db, backup_id), names in sorted(dirs.items()):
        if MANIFEST_NAME not in names:
            listing.uncommitted.append((db, backup_id, src))
            continue
        key = f"{backup_dir(db, backup_id, src)}{MANIFEST_NAME}"
        try:
            manifest = parse_db_manifest(read_document(storage, key, limit=MAX_MANIFEST_BYTES), key)
        except BackdrillError as exc:
            if exc.exit_code == 5:  # storage failure, not a broken manifest
                raise
            listing.broken.append(BrokenEntry(key, str(exc)))
            continue
        listing.backups.append(manifest)
    listing.backups.sort(key=lambda m: (m.created_at, m.id))
    return listing


BACKUP_WORDS = Words(
    entry="backup",
    entries="backups",
    committed="committed backup",
    group="database",
    groups="databases",
    option="--database NAME",
    listing="`backdrill list db`",
    making="`backdrill backup db`",
)


def select_backup(
    backups: Iterable[DbManifest],
    spec: str = "latest",
    *,
    database: str | None = None,
    before: datetime | None = None,
    source: str | None = None,
) -> DbManifest:
    """Pure: the backup named by ``spec`` (an id or ``latest``), optionally the newest one
    of ``database`` (of ``source``) created strictly before ``before``. A database name
    that several sources back up needs ``source``; without a database, the groups are
    named as ``<source>/<database>`` for a named source."""
    backups = list(backups)
    if source is None and database is not None:
        holding = sorted({m.source for m in backups if m.database == database})
        if len(holding) > 1 and spec == "latest":
            raise UsageError(
                f"sources {', '.join(holding)} each hold backups of database {database!r}",
                hint="choose one with --source NAME",
            )
        source = holding[0] if len(holding) == 1 else None
    if source is not None:
        backups = [m for m in backups if m.source == source]
    return select(
        backups,
        spec,
        group_of=lambda m: (
            m.database if source is not None else attempt_scope(m.database, m.source)
        ),
        group=database,
        before=before,
        words=BACKUP_WORDS,
    )
