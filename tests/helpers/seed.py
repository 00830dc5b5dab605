"""Write committed manifests, snapshots and drill reports with chosen times straight into
a local repository directory (following manifest.py's model and docs/format.md)."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from backdrill.report.model import DrillReport
from backdrill.repository.layout import MANIFEST_NAME
from backdrill.repository.manifest import DUMP_NAME, SCHEMA_VERSION, DbManifest, TableRows
from backdrill.runtime.timeutil import isoformat
from helpers.cli import Repo, repo_config


def db_manifest(backup_id: str, database: str, created_at: datetime, **fields: Any) -> DbManifest:
    """A valid manifest of a backup of ``database`` made at once at ``created_at``, one
    byte, no tables; ``fields`` replace any of its values."""
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "id": backup_id,
        "database": database,
        "created_at": created_at,
        "started_at": created_at,
        "finished_at": created_at,
        "compression": {"algorithm": "zstd", "level": 3},
        "raw_size": 1,
        "stored_size": 1,
        "sha256": "0" * 64,
        "server_version": "15.0",
        "pg_dump_version": "15.0",
        "backdrill_version": "test",
        "run_id": "test",
        "host": "test",
        "tables": [],
    }
    return DbManifest.model_validate({**doc, **fields})


def write_manifest(
    root: Path,
    database: str,
    created_at: datetime,
    *,
    seconds: float = 42.0,
    stored_size: int = 123_456,
) -> DbManifest:
    backup_id = f"{created_at:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    manifest = db_manifest(
        backup_id,
        database,
        created_at,
        finished_at=created_at + timedelta(seconds=seconds),
        raw_size=stored_size * 4,
        stored_size=stored_size,
        server_version="15.8",
        pg_dump_version="15.8",
        backdrill_version="0.1.0",
        run_id="seed",
        tables=[TableRows.model_validate({"schema": "public", "table": "t", "rows": 1})],
    )
    folder = root / "db" / database / backup_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DUMP_NAME).write_bytes(b"\0" * 16)
    (folder / MANIFEST_NAME).write_text(manifest.to_json())
    return manifest


def write_snapshot(root: Path, source: str, created_at: datetime) -> str:
    snapshot_id = f"{created_at:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    folder = root / "files" / source / "snapshots"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{snapshot_id}.json.zst").write_bytes(b"(\xb5/\xfd")
    return snapshot_id


def drill_report(drill_id: str, at: datetime, **fields: Any) -> DrillReport:
    """A drill report that took no time at ``at``, of no backup, no sandbox and no
    objectives, passed and cleaned up; ``fields`` replace any of its values."""
    doc: dict[str, Any] = {
        "drill_id": drill_id,
        "run_id": "r",
        "host": "h",
        "operator": "o",
        "backdrill_version": "0",
        "started_at": at,
        "finished_at": at,
        "backup": None,
        "sandbox": None,
        "rpo": None,
        "rto": None,
        "result": "pass",
        "cleanup": "done",
        "previous_report_sha256": None,
    }
    return DrillReport(**{**doc, **fields})


def write_drill(
    root: Path,
    finished_at: datetime,
    *,
    result: str = "pass",
    database: str = "odoo",
    rpo_seconds: float = 7200.0,
    rto_seconds: float = 900.0,
) -> str:
    drill_id = f"{finished_at:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    started = finished_at - timedelta(seconds=rto_seconds)
    report = {  # a whole report: status reads it with the strict parser
        "schema_version": 1,
        "drill_id": drill_id,
        "run_id": "seed",
        "host": "seed-host",
        "operator": "seed",
        "backdrill_version": "0",
        "started_at": isoformat(started),
        "finished_at": isoformat(finished_at),
        "backup": {
            "id": "x",
            "database": database,
            "created_at": isoformat(started),
            "sha256": "0" * 64,
            "size_bytes": 1,
        },
        "sandbox": None,
        "rpo": {
            "achieved_seconds": rpo_seconds,
            "target_seconds": 86400,
            "met": True,
            "worst_gap_seconds": rpo_seconds,
        },
        "rto": {
            "achieved_seconds": rto_seconds,
            "target_seconds": 14400,
            "met": True,
            "phases": {},
        },
        "checks": [],
        "result": result,
        "cleanup": "removed",
        "previous_report_sha256": None,
    }
    folder = root / "evidence" / drill_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report))
    return drill_id


def odoo_config(tmp_path: Path, repo: Path, *, ssot: bool = True) -> Path:
    """The configuration (``backdrill.yaml`` in ``tmp_path``) of one Odoo database and
    its filestore in the local repository ``repo``, naming the project's SSOT file
    unless told not to; no PostgreSQL connection (the commands that read it need none)."""
    return repo_config(
        tmp_path / "backdrill.yaml",
        Repo(f"file://{repo}"),
        ssot=ssot,
        postgres={"databases": ["odoo"]},
        files={"source": "/var/lib/odoo/filestore/odoo"},
    )
