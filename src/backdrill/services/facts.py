"""What the repository holds, read once: the newest committed database backups, filestore
snapshots, drill reports and the last attempt of each command. ``status``, ``serve`` and
``--metrics-file`` evaluate these facts; reading them is the only part that touches
storage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from backdrill.config.model import Config
from backdrill.config.sources import attempt_scope
from backdrill.report.model import DrillReport, parse_report
from backdrill.repository import layout
from backdrill.repository.attempts import Attempt, read_attempts
from backdrill.repository.catalog import list_db_backups
from backdrill.repository.documents import read_document
from backdrill.repository.layout import DEFAULT_SOURCE
from backdrill.repository.limits import MAX_REPORT_BYTES
from backdrill.repository.manifest import DbManifest
from backdrill.runtime.errors import IntegrityError
from backdrill.runtime.timeutil import MAX_CLOCK_SKEW, is_id, utcnow
from backdrill.storage import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DbFacts:
    database: str
    latest: DbManifest
    count: int
    #: the PostgreSQL source (config ``sources:``)
    source: str = DEFAULT_SOURCE


@dataclass(frozen=True)
class SnapshotFacts:
    source: str
    latest_id: str
    created_at: datetime
    count: int


@dataclass(frozen=True)
class DrillFacts:
    drill_id: str
    result: str
    finished_at: datetime | None
    database: str | None = None
    rpo_seconds: float | None = None
    rto_seconds: float | None = None
    source: str | None = None


@dataclass
class RepoFacts:
    read_at: datetime
    #: by database, ``<source>/<database>`` for a named source (sources.attempt_scope)
    databases: dict[str, DbFacts] = field(default_factory=dict)
    snapshots: dict[str, SnapshotFacts] = field(default_factory=dict)
    last_drill: DrillFacts | None = None
    last_passed_drill: DrillFacts | None = None
    drill_count: int = 0
    broken: list[str] = field(default_factory=list)
    #: the last attempt of each command per scope (attempts.py)
    attempts: list[Attempt] = field(default_factory=list)


def source_name(config: Config) -> str | None:
    """The configured filestore source's name in the repository (the layout's rule)."""
    return layout.source_name(config.files.source, config.files.name)


def _snapshot_ids(storage: Storage, prefix: str) -> dict[str, list[tuple[str, datetime, str]]]:
    """``{source: [(snapshot id, its time, key), …]}`` of snapshot objects under ``prefix``
    (a snapshot is dated by its id: ids sort by time)."""
    found: dict[str, list[tuple[str, datetime, str]]] = {}
    for info in storage.list_objects(prefix):
        split = layout.split_snapshot_key(info.key)
        if split is None or not is_id(split[1]):
            continue
        moment = layout.id_time(split[1])
        if moment is not None:
            found.setdefault(split[0], []).append((split[1], moment, info.key))
    return found


def read_snapshots(
    storage: Storage, source: str | None, broken: list[str] | None = None
) -> dict[str, SnapshotFacts]:
    """The newest snapshot of each source; one whose id lies in the future (beyond the
    clock skew allowance) is not believed: it goes to ``broken``."""
    found = _snapshot_ids(storage, layout.snapshots_prefix(source)) if source else {}
    if not found:
        # unknown or differently named source: scan every source once
        found = _snapshot_ids(storage, layout.FILES_ROOT)
    limit = utcnow() + MAX_CLOCK_SKEW
    out: dict[str, SnapshotFacts] = {}
    for name, all_entries in found.items():
        entries = []
        for snapshot_id, moment, key in all_entries:
            if moment > limit:
                if broken is not None:
                    broken.append(f"{key}: snapshot id {snapshot_id} lies in the future")
                continue
            entries.append((snapshot_id, moment))
        if entries:
            newest_id, moment = max(entries)
            out[name] = SnapshotFacts(name, newest_id, moment, len(entries))
    return out


def _drill_facts(report: DrillReport) -> DrillFacts:
    return DrillFacts(
        drill_id=report.drill_id,
        result=report.result,
        finished_at=report.finished_at,
        database=report.backup.database if report.backup else None,
        source=report.backup.source if report.backup else None,
        rpo_seconds=report.rpo.achieved_seconds if report.rpo else None,
        rto_seconds=report.rto.achieved_seconds if report.rto else None,
    )


def read_drills(storage: Storage, facts: RepoFacts) -> None:
    """The newest drill report, and the newest passed one (reading back from the newest
    until one passed). Reports are parsed strictly (:func:`parse_report`); one that
    does not parse is named in ``broken``."""
    ids = sorted(
        {
            split[0]
            for info in storage.list_objects(layout.EVIDENCE_ROOT)
            if (split := layout.split_report_key(info.key)) and split[1] == layout.REPORT_JSON
        },
        reverse=True,
    )
    facts.drill_count = len(ids)
    for drill_id in ids:
        key = layout.report_key(drill_id)
        try:
            report = parse_report(read_document(storage, key, limit=MAX_REPORT_BYTES), key)
        except IntegrityError as exc:  # a storage failure (StorageError) propagates
            facts.broken.append(f"{key}: {exc}")
            continue
        drill = _drill_facts(report)
        if facts.last_drill is None:
            facts.last_drill = drill
        if drill.result == "pass":
            facts.last_passed_drill = drill
            return


def gather(storage: Storage, config: Config) -> RepoFacts:
    """List the repository (three listings and a few reads); StorageError if it fails."""
    facts = RepoFacts(read_at=utcnow())
    listing = list_db_backups(storage)
    by_db: dict[str, list[DbManifest]] = {}
    for manifest in listing.backups:
        by_db.setdefault(attempt_scope(manifest.database, manifest.source), []).append(manifest)
    for name, manifests in by_db.items():
        latest = manifests[-1]
        facts.databases[name] = DbFacts(latest.database, latest, len(manifests), latest.source)
    facts.broken.extend(f"{b.key}: {b.reason}" for b in listing.broken)
    facts.snapshots = read_snapshots(storage, source_name(config), facts.broken)
    read_drills(storage, facts)
    facts.attempts = read_attempts(storage, facts.broken)
    return facts
