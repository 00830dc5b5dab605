"""Write synthetic repository content through backdrill's own storage: committed db
backups at chosen times, filestore snapshots and objects, and configs for prune."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from backdrill.config.model import StorageConfig
from backdrill.repository.layout import DEFAULT_SOURCE, MANIFEST_NAME, backup_dir
from backdrill.repository.manifest import DUMP_NAME
from backdrill.repository.zstdio import compressed
from backdrill.runtime.timeutil import new_id, utcnow
from backdrill.storage import Storage, open_repository
from helpers.cli import Repo
from helpers.seed import db_manifest


def storage_of(repo: Repo, **extra: Any) -> Storage:
    return open_repository(StorageConfig.model_validate({"url": repo.url, **repo.storage, **extra}))


def prune_config(
    path: Path, repo: Repo, storage: dict[str, Any] | None = None, **retention: Any
) -> Path:
    doc = {"storage": {"url": repo.url, **repo.storage, **(storage or {})}, "retention": retention}
    path.write_text(yaml.safe_dump(doc))
    return path


def fake_db_backup(
    storage: Storage,
    database: str,
    created_at: datetime,
    size: int = 1000,
    source: str = DEFAULT_SOURCE,
) -> str:
    backup_id = new_id(created_at)
    prefix = backup_dir(database, backup_id, source)
    data = (backup_id.encode() * (size // len(backup_id) + 1))[:size]
    storage.put_bytes(prefix + DUMP_NAME, data)
    manifest = db_manifest(
        backup_id,
        database,
        created_at,
        source=source,
        raw_size=size,
        stored_size=size,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    storage.put_bytes(prefix + MANIFEST_NAME, manifest.to_json().encode())
    return backup_id


def fake_db_backups(
    repo: Repo, database: str, *ages: timedelta, source: str = DEFAULT_SOURCE
) -> list[str]:
    """One :func:`fake_db_backup` of ``database`` on ``repo`` per age (how long ago it
    was taken; negative: in the future), in that order: their ids."""
    now = utcnow()
    with storage_of(repo) as storage:
        return [fake_db_backup(storage, database, now - age, source=source) for age in ages]


def put_file_object(storage: Storage, content: bytes) -> str:
    sha = hashlib.sha256(content).hexdigest()
    storage.put_bytes(f"files/objects/{sha[:2]}/{sha}", content)
    return sha


def fake_snapshot(storage: Storage, source: str, created_at: datetime, shas: list[str]) -> str:
    snapshot_id = new_id(created_at)
    doc = {
        "schema_version": 1,
        "id": snapshot_id,
        "source": source,
        "created_at": created_at.isoformat(),
        "entries": [{"path": f"f{i}", "sha256": sha, "size": 1} for i, sha in enumerate(shas)],
    }
    key = f"files/{source}/snapshots/{snapshot_id}.json.zst"
    storage.put_bytes(key, compressed(json.dumps(doc).encode()))
    return key
