"""What the repository holds, read once: the newest committed database backups, filestore
snapshots, drill reports and the last attempt of each command. ``status``, ``serve`` and
``--metrics-file`` evaluate these facts; reading them is the only part that touches
storage.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse

from backdrill.attempts import Attempt, read_attempts
from backdrill.catalog import list_db_backups
from backdrill.config import DEFAULT_SOURCE, Config
from backdrill.documents import read_document
from backdrill.errors import BackdrillError
from backdrill.limits import MAX_REPORT_BYTES
from backdrill.manifest import DbManifest
from backdrill.sources import attempt_scope
from backdrill.storage import Storage
from backdrill.timeutil import MAX_CLOCK_SKEW, is_id, parse_time, utcnow

log = logging.getLogger(__name__)

FILES_ROOT = "files/"
EVIDENCE_ROOT = "evidence/"
SNAPSHOT_SUFFIX = ".json.zst"


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
    """The filestore source's name in the repository: ``files.name``, else the last
    segment of ``files.source`` (a directory or an s3:// URL)."""
    if config.files.name:
        return config.files.name
    if not config.files.source:
        return None
    parsed = urlparse(config.files.source)
    if parsed.scheme == "s3":  # s3://bucket/prefix: the prefix's last segment, else the bucket
        return PurePosixPath(parsed.path.strip("/")).name or parsed.netloc
    return PurePosixPath(config.files.source.rstrip("/")).name or None


def snapshot_created_at(storage: Storage, key: str, snapshot_id: str) -> datetime:
    """When a snapshot was taken. For now, the time in its id (ids sort by time,
    ``20261126T040000Z-1a2b3c``); the one place to change when snapshots are read."""
    del storage, key
    return datetime.strptime(snapshot_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _snapshot_ids(storage: Storage, prefix: str) -> dict[str, list[tuple[str, str]]]:
    """``{source: [(snapshot id, key), …]}`` of snapshot objects under ``prefix``."""
    found: dict[str, list[tuple[str, str]]] = {}
    for info in storage.list_objects(prefix):
        parts = info.key[len(FILES_ROOT) :].split("/")
        if len(parts) != 3 or parts[1] != "snapshots" or not parts[2].endswith(SNAPSHOT_SUFFIX):
            continue
        snapshot_id = parts[2].removesuffix(SNAPSHOT_SUFFIX)
        if is_id(snapshot_id):
            found.setdefault(parts[0], []).append((snapshot_id, info.key))
    return found


def read_snapshots(
    storage: Storage, source: str | None, broken: list[str] | None = None
) -> dict[str, SnapshotFacts]:
    """The newest snapshot of each source; one whose id lies in the future (beyond the
    clock skew allowance) is not believed: it goes to ``broken``."""
    found = _snapshot_ids(storage, f"{FILES_ROOT}{source}/snapshots/") if source else {}
    if not found:
        # unknown or differently named source: scan every source once
        found = _snapshot_ids(storage, FILES_ROOT)
    limit = utcnow() + MAX_CLOCK_SKEW
    out: dict[str, SnapshotFacts] = {}
    for name, all_entries in found.items():
        entries = []
        for snapshot_id, key in all_entries:
            if snapshot_created_at(storage, key, snapshot_id) > limit:
                if broken is not None:
                    broken.append(f"{key}: snapshot id {snapshot_id} lies in the future")
                continue
            entries.append((snapshot_id, key))
        if not entries:
            continue
        newest_id, key = max(entries)
        out[name] = SnapshotFacts(
            name, newest_id, snapshot_created_at(storage, key, newest_id), len(entries)
        )
    return out


def _section(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _parse_report(data: bytes, drill_id: str) -> DrillFacts:
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("result") not in ("pass", "fail"):
        raise ValueError("no result pass/fail")
    finished = doc.get("finished_at")
    rpo, rto, backup = (_section(doc, k) for k in ("rpo", "rto", "backup"))
    return DrillFacts(
        drill_id=str(doc.get("drill_id") or drill_id),
        result=str(doc["result"]),
        finished_at=parse_time(finished) if isinstance(finished, str) else None,
        database=backup.get("database"),
        source=backup.get("source") if isinstance(backup.get("source"), str) else None,
        rpo_seconds=rpo.get("achieved_seconds"),
        rto_seconds=rto.get("achieved_seconds"),
    )


def read_drills(storage: Storage, facts: RepoFacts) -> None:
    """The newest drill report, and the newest passed one (reading back from the newest
    until one passed)."""
    ids = sorted(
        {
            info.key.split("/")[1]
            for info in storage.list_objects(EVIDENCE_ROOT)
            if info.key.endswith("/report.json") and info.key.count("/") == 2
        },
        reverse=True,
    )
    facts.drill_count = len(ids)
    for drill_id in ids:
        key = f"{EVIDENCE_ROOT}{drill_id}/report.json"
        try:
            drill = _parse_report(read_document(storage, key, limit=MAX_REPORT_BYTES), drill_id)
        except BackdrillError as exc:
            if exc.exit_code == 5:
                raise
            facts.broken.append(f"{key}: {exc}")
            continue
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            facts.broken.append(f"{key}: unreadable drill report: {exc}")
            continue
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
