"""Committed filestore snapshots, read from their manifests, and the pure choices over
them: ``latest``, by id, ``--before``, and the one nearest after a database backup."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from backdrill.files.snapshot import Snapshot, load_snapshot
from backdrill.repository.catalog import BrokenEntry
from backdrill.repository.layout import (
    FILES_ROOT,
    RESERVED_SOURCE_NAMES,
    SNAPSHOT_SUFFIX,
    snapshots_prefix,
)
from backdrill.repository.selection import Words, select
from backdrill.runtime.errors import BackdrillError, ExternalServiceError, IntegrityError, NotFound
from backdrill.storage import Storage


@dataclass
class SnapshotListing:
    snapshots: list[Snapshot] = field(default_factory=list)
    broken: list[BrokenEntry] = field(default_factory=list)

    def refuse_broken(self, snapshot_id: str) -> None:
        """IntegrityError (exit 4) naming the snapshot when the one asked for by id is
        unreadable or misplaced."""
        name = f"{snapshot_id}{SNAPSHOT_SUFFIX}"
        for broken in self.broken:
            if broken.key.rsplit("/", 1)[-1] == name:
                raise IntegrityError(broken.reason)


def source_names(storage: Storage) -> list[str]:
    return [n for n in storage.list_dirs(FILES_ROOT) if n not in RESERVED_SOURCE_NAMES]


def _snapshot_keys(storage: Storage, source_name: str) -> list[str]:
    """The snapshot manifests of one source (one listing)."""
    prefix = snapshots_prefix(source_name)
    return [
        info.key
        for info in storage.list_objects(prefix)
        if info.key.endswith(SNAPSHOT_SUFFIX) and "/" not in info.key[len(prefix) :]
    ]


def _second(key: str) -> str:
    """The time of a snapshot's id, to the second (``20261126T040000Z``)."""
    return key.rsplit("/", 1)[-1].split("-", maxsplit=1)[0]


def list_snapshots(storage: Storage, source_name: str | None = None) -> SnapshotListing:
    """Every committed snapshot (of one source, or of all), oldest first."""
    names = [source_name] if source_name else source_names(storage)
    listing = SnapshotListing()
    for name in names:
        for key in _snapshot_keys(storage, name):
            try:
                listing.snapshots.append(load_snapshot(storage, key))
            except ExternalServiceError:  # storage failure, not a broken manifest
                raise
            except BackdrillError as exc:
                listing.broken.append(BrokenEntry(key, str(exc)))
    listing.snapshots.sort(key=lambda s: (s.created_at, s.id))
    return listing


def latest_snapshot(storage: Storage, source_name: str) -> Snapshot | None:
    """The newest readable snapshot of one source, parsing only the manifests of the
    newest second (ids sort by time to the second; within one, ``created_at`` decides);
    None when there is none."""
    newest: Snapshot | None = None
    for key in sorted(_snapshot_keys(storage, source_name), reverse=True):
        if newest is not None and _second(key) != _second(newest.key()):
            break  # an older second
        try:
            snapshot = load_snapshot(storage, key)
        except ExternalServiceError:
            raise
        except BackdrillError:
            continue
        if newest is None or (snapshot.created_at, snapshot.id) > (newest.created_at, newest.id):
            newest = snapshot
    return newest


def find_snapshot(snapshots: Iterable[Snapshot], snapshot_id: str) -> Snapshot | None:
    return next((s for s in snapshots if s.id == snapshot_id), None)


SNAPSHOT_WORDS = Words(
    entry="snapshot",
    entries="snapshots",
    committed="committed files snapshot",
    group="source",
    groups="sources",
    option="--source-name NAME",
    listing="`backdrill list files`",
    making="`backdrill backup files`",
)


def select_snapshot(
    snapshots: Iterable[Snapshot],
    spec: str = "latest",
    *,
    source_name: str | None = None,
    before: datetime | None = None,
) -> Snapshot:
    """Pure: the snapshot named by ``spec`` (an id or ``latest``), optionally the newest
    of ``source_name`` created strictly before ``before``."""
    return select(
        snapshots,
        spec,
        group_of=lambda s: s.source_name,
        group=source_name,
        before=before,
        words=SNAPSHOT_WORDS,
    )


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
