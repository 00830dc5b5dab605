"""Committed filestore snapshots, read from their manifests, and the pure choices over
them: ``latest``, by id, ``--before``, and the one nearest after a database backup."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from backdrill.catalog import BrokenEntry
from backdrill.errors import BackdrillError, NotFound, UsageError
from backdrill.files.snapshot import (
    FILES_ROOT,
    OBJECTS_PREFIX,
    SNAPSHOT_SUFFIX,
    SNAPSHOTS_DIR,
    Snapshot,
    parse_snapshot,
)
from backdrill.storage import Storage

RESERVED_NAMES = frozenset({OBJECTS_PREFIX[len(FILES_ROOT) :].rstrip("/")})


@dataclass
class SnapshotListing:
    snapshots: list[Snapshot] = field(default_factory=list)
    broken: list[BrokenEntry] = field(default_factory=list)


def source_names(storage: Storage) -> list[str]:
    return [n for n in storage.list_dirs(FILES_ROOT) if n not in RESERVED_NAMES]


def list_snapshots(storage: Storage, source_name: str | None = None) -> SnapshotListing:
    """Every committed snapshot (of one source, or of all), oldest first."""
    names = [source_name] if source_name else source_names(storage)
    listing = SnapshotListing()
    for name in names:
        prefix = f"{FILES_ROOT}{name}/{SNAPSHOTS_DIR}/"
        for info in storage.list_objects(prefix):
            if not info.key.endswith(SNAPSHOT_SUFFIX) or "/" in info.key[len(prefix) :]:
                continue
            try:
                listing.snapshots.append(parse_snapshot(storage.get_bytes(info.key), info.key))
            except BackdrillError as exc:
                if exc.exit_code == 5:  # storage failure, not a broken manifest
                    raise
                listing.broken.append(BrokenEntry(info.key, str(exc)))
    listing.snapshots.sort(key=lambda s: (s.created_at, s.id))
    return listing


def latest_snapshot(storage: Storage, source_name: str) -> Snapshot | None:
    """The newest readable snapshot of one source, parsing only as many manifests as it
    takes (ids sort by time); None when there is none."""
    prefix = f"{FILES_ROOT}{source_name}/{SNAPSHOTS_DIR}/"
    keys = [
        info.key
        for info in storage.list_objects(prefix)
        if info.key.endswith(SNAPSHOT_SUFFIX) and "/" not in info.key[len(prefix) :]
    ]
    for key in sorted(keys, reverse=True):
        try:
            return parse_snapshot(storage.get_bytes(key), key)
        except BackdrillError as exc:
            if exc.exit_code == 5:
                raise
            continue
    return None


def find_snapshot(snapshots: Iterable[Snapshot], snapshot_id: str) -> Snapshot | None:
    return next((s for s in snapshots if s.id == snapshot_id), None)


def select_snapshot(
    snapshots: Iterable[Snapshot],
    spec: str = "latest",
    *,
    source_name: str | None = None,
    before: datetime | None = None,
) -> Snapshot:
    """Pure: the snapshot named by ``spec`` (an id or ``latest``), optionally the newest
    of ``source_name`` created strictly before ``before``."""
    candidates = [s for s in snapshots if source_name is None or s.source_name == source_name]
    if spec != "latest":
        found = find_snapshot(candidates, spec)
        if found is None:
            raise NotFound(
                f"no committed files snapshot with id {spec}", hint="see `backdrill list files`"
            )
        if before is not None and found.created_at >= before:
            raise NotFound(f"snapshot {spec} was created at or after --before")
        return found
    if before is not None:
        candidates = [s for s in candidates if s.created_at < before]
    if not candidates:
        scope = f" of source {source_name}" if source_name else ""
        when = f" before {before.isoformat()}" if before else ""
        raise NotFound(f"no committed files snapshot{scope}{when}")
    names = {s.source_name for s in candidates}
    if source_name is None and len(names) > 1:
        raise UsageError(
            f"the repository holds snapshots of several sources ({', '.join(sorted(names))})",
            hint="choose one with --source-name NAME",
        )
    return max(candidates, key=lambda s: (s.created_at, s.id))


@dataclass(frozen=True)
class SnapshotChoice:
    snapshot: Snapshot
    #: False when no snapshot was taken after the moment and the newest one before it
    #: stands in: it may lack files the database references
    after: bool


def select_snapshot_after(snapshots: Sequence[Snapshot], moment: datetime) -> SnapshotChoice:
    """Pure: the snapshot taken nearest after ``moment`` (a database backup's
    ``created_at``); else the newest one before it, flagged. NotFound if none."""
    later = [s for s in snapshots if s.created_at >= moment]
    if later:
        return SnapshotChoice(min(later, key=lambda s: (s.created_at, s.id)), after=True)
    if not snapshots:
        raise NotFound("no committed files snapshot", hint="run `backdrill backup files`")
    return SnapshotChoice(max(snapshots, key=lambda s: (s.created_at, s.id)), after=False)
