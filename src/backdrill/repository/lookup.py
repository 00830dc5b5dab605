"""The one lookup of what an id names for ``show`` and ``verify``: a database backup or
a files snapshot, by whole id, by unique prefix (:func:`backdrill.repository.selection.resolve_id`),
or ``latest`` (the newest database backup)."""

from __future__ import annotations

from backdrill.files.catalog import SnapshotListing, find_snapshot, list_snapshots
from backdrill.files.snapshot import Snapshot
from backdrill.repository.catalog import DbListing, list_db_backups, select_backup
from backdrill.repository.manifest import DbManifest
from backdrill.repository.selection import resolve_id
from backdrill.runtime.errors import NotFound
from backdrill.storage import Storage


def pick_backup_or_snapshot(
    db: DbListing, snapshots: SnapshotListing, spec: str
) -> DbManifest | Snapshot:
    """Pure: the committed backup or snapshot ``spec`` names (not ``latest``). An id
    whose manifest is unreadable or misplaced is an IntegrityError naming the problem;
    an id naming nothing is NotFound."""
    ids = [*(m.id for m in db.backups), *(s.id for s in snapshots.snapshots)]
    wanted = resolve_id(ids, spec, what="backup or snapshot") or spec
    backup = next((m for m in db.backups if m.id == wanted), None)
    if backup is not None:
        return backup
    db.refuse_broken(wanted)  # name the problem, not "no such backup"
    snapshots.refuse_broken(wanted)
    snapshot = find_snapshot(snapshots.snapshots, wanted)
    if snapshot is None:
        raise NotFound(
            f"no backup with id {spec} (neither a database backup nor a files snapshot)",
            hint="see `backdrill list` and `backdrill list files`",
        )
    return snapshot


def find_backup_or_snapshot(
    storage: Storage, spec: str, *, db: DbListing | None = None
) -> DbManifest | Snapshot:
    """What ``spec`` names in the repository; ``latest`` is the newest database backup
    (its snapshots are not listed then). ``db``: the database listing, when the caller
    already has it."""
    listing = db if db is not None else list_db_backups(storage)
    if spec == "latest":
        return select_backup(listing.backups, "latest")
    return pick_backup_or_snapshot(listing, list_snapshots(storage), spec)
