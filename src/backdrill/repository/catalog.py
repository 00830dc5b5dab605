"""The repository's catalogue of committed backups, read from manifests.

A backup exists only when its manifest does. Unreadable manifests, and manifests not
valid where they lie (:func:`backdrill.repository.manifest.check_where_it_lies`), are collected, not
skipped silently (Barman's catalog), so that prune can refuse to act while any exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from backdrill.config.sources import attempt_scope
from backdrill.repository.documents import read_document
from backdrill.repository.layout import (
    MANIFEST_NAME,
    db_dir,
    db_root,
    manifest_key,
    source_root,
    split_backup_key,
)
from backdrill.repository.limits import MAX_MANIFEST_BYTES
from backdrill.repository.manifest import DbManifest, parse_db_manifest
from backdrill.repository.selection import Words, select
from backdrill.runtime.errors import (
    BackdrillError,
    ExternalServiceError,
    IntegrityError,
    UsageError,
)
from backdrill.storage import Storage

__all__ = [
    "BACKUP_WORDS",
    "BrokenEntry",
    "DbListing",
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


def _prefixes(database: str | None, source: str | None) -> list[str]:
    if source is not None:
        return [db_dir(database, source) if database else db_root(source)]
    if database:
        return [db_dir(database), source_root("")]
    return [db_root(), source_root("")]


def list_db_backups(
    storage: Storage, database: str | None = None, source: str | None = None
) -> DbListing:
    """Every committed database backup (of ``source``, None: of every source), oldest
    first, with broken and uncommitted ones."""
    dirs: dict[tuple[str, str, str], set[str]] = {}
    for prefix in _prefixes(database, source):
        for info in storage.list_objects(prefix):
            split = split_backup_key(info.key)
            if split is None or (database is not None and split[1] != database):
                continue
            src, db, backup_id, name = split
            dirs.setdefault((src, db, backup_id), set()).add(name)
    listing = DbListing()
    for (src, db, backup_id), names in sorted(dirs.items()):
        if MANIFEST_NAME not in names:
            listing.uncommitted.append((db, backup_id, src))
            continue
        key = manifest_key(db, backup_id, src)
        try:
            manifest = parse_db_manifest(read_document(storage, key, limit=MAX_MANIFEST_BYTES), key)
        except ExternalServiceError:  # storage failure, not a broken manifest
            raise
        except BackdrillError as exc:
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
