"""Filestore trees for the files tests: build one, describe one, configure a backup of it."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import boto3
import yaml

from backdrill.config.loading import load_config
from backdrill.files.chunks import iter_entries, iter_skipped
from backdrill.files.snapshot import FileEntry, SkippedEntry, Snapshot
from backdrill.services.context import RunContext
from backdrill.storage import open_repository
from helpers.cli import Repo

S3_KEY_ID = "testing-key-id"
S3_SECRET = "testing-secret-Zq8vX"

TreeState = dict[str, tuple[str, bytes, int, int]]


def content(i: int, size: int = 3000) -> bytes:
    """Deterministic content: half compressible text, half pseudo-random bytes."""
    seed = hashlib.sha256(str(i).encode()).digest()
    noise = (seed * (size // 64 + 1))[: size // 2]
    text = (f"attachment {i} " * (size // 20 + 1)).encode()[: size - len(noise)]
    return text + noise


def odoo_name(data: bytes) -> str:
    sha1 = hashlib.sha1(data).hexdigest()  # noqa: S324 - Odoo's content address
    return f"{sha1[:2]}/{sha1}"


def make_tree(root: Path, count: int = 30) -> None:
    """An Odoo-like filestore, plus the odd cases: modes, an empty file, a duplicate,
    an incompressible file, a symlink, nested directories, mtimes in the past."""
    for i in range(count):
        data = content(i)
        path = root / odoo_name(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, ns=(1_700_000_000_123_456_789 + i, 1_700_000_000_123_456_789 + i))
    (root / "deep" / "er").mkdir(parents=True)
    (root / "deep" / "er" / "empty").write_bytes(b"")
    (root / "deep" / "random.bin").write_bytes(os.urandom(20_000))
    (root / "deep" / "dup").write_bytes(content(0))
    (root / "deep" / "private").write_bytes(b"secret-ish")
    (root / "deep" / "private").chmod(0o600)
    (root / "deep" / "script.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "deep" / "script.sh").chmod(0o755)
    (root / "link-to-dup").symlink_to("deep/dup")


def tree_state(root: Path) -> TreeState:
    """path -> (kind, content or link target, mode, mtime_ns) of every file and symlink."""
    state: TreeState = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(path).encode(), 0, st.st_mtime_ns)
            else:
                data = path.read_bytes()
                state[rel] = ("file", data, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return state


def s3_options(endpoint: str) -> dict[str, Any]:
    return {
        "endpoint_url": endpoint,
        "region": "us-east-1",
        "access_key_id": S3_KEY_ID,
        "secret_access_key": S3_SECRET,
    }


#: boto3's names of the settings of :func:`s3_options`
_BOTO_NAMES = {
    "region": "region_name",
    "access_key_id": "aws_access_key_id",
    "secret_access_key": "aws_secret_access_key",
}


def s3(endpoint: str) -> Any:
    """A boto3 client with the settings of :func:`s3_options`."""
    return boto3.client("s3", **{_BOTO_NAMES.get(k, k): v for k, v in s3_options(endpoint).items()})


def upload_tree(endpoint: str, bucket: str, prefix: str, root: Path) -> dict[str, bytes]:
    """Put every regular file of ``root`` under ``s3://bucket/prefix/``."""
    client = s3(endpoint)
    client.create_bucket(Bucket=bucket)
    uploaded: dict[str, bytes] = {}
    for rel, (kind, data, _mode, _mtime) in tree_state(root).items():
        if kind == "file":
            client.put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=data)
            uploaded[rel] = data
    return uploaded


def bucket_contents(endpoint: str, bucket: str, prefix: str) -> dict[str, bytes]:
    client = s3(endpoint)
    found: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}/"
    ):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            found[item["Key"][len(prefix) + 1 :]] = body
    return found


def files_config(path: Path, repo: Repo, source: str, **files: Any) -> Path:
    doc: dict[str, Any] = {
        "storage": {"url": repo.url, **repo.storage},
        "files": {"source": source, **files},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def pruned_files_config(path: Path, repo: Repo, source: Path) -> Path:
    """:func:`files_config` with a retention prune applies at once (30 days, one kept,
    no grace)."""
    config = files_config(path, repo, str(source))
    doc = yaml.safe_load(config.read_text())
    doc["retention"] = {"days": 30, "min_keep": 1, "grace_hours": 0}
    config.write_text(yaml.safe_dump(doc))
    return config


def run_context(config: Path) -> RunContext:
    cfg = load_config(config)
    return RunContext(config=cfg, storage=open_repository(cfg.storage), run_id="test-run")


def snapshot_entries(config: Path, snapshot: Snapshot) -> list[FileEntry]:
    """Every entry of ``snapshot`` (read from its chunks, schema_version 2)."""
    return list(iter_entries(run_context(config).storage, snapshot))


def snapshot_skipped(config: Path, snapshot: Snapshot) -> list[SkippedEntry]:
    return list(iter_skipped(run_context(config).storage, snapshot))
