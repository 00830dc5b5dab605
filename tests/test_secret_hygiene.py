"""Secret hygiene: a canary for each kind of secret (PostgreSQL password, S3 secret
key, webhook URL, age identity) is searched for in every byte a series of real runs
produced (stdout, stderr in JSON and text, reports, manifests, every object of the
encrypted repository, and the argv of every process sampled during the runs) and is
found nowhere; error lines that quote a DSN or URL mask the password."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path

import pyrage
import pytest
import yaml

from backdrill.pg.connection import ConnParams
from backdrill.sample.odoo import SampleInfo
from conftest import S3_KEY_ID, drop_database, s3_client
from helpers.cli import Repo
from helpers.repo import list_keys, read_object
from test_secrets import _watch_cmdlines

pytestmark = pytest.mark.reliability
PG_CANARY = f"canaryPG-{secrets.token_hex(6)}"
S3_CANARY = f"canaryS3-{secrets.token_hex(6)}"
HOOK_CANARY = f"https://hooks.example.com/services/canaryHOOK-{secrets.token_hex(6)}"


@pytest.fixture
def canary_role(pg: ConnParams) -> ConnParams:
    with pg.connect() as conn:
        conn.execute("DROP ROLE IF EXISTS backup_canary")
        conn.execute(f"CREATE ROLE backup_canary LOGIN SUPERUSER PASSWORD '{PG_CANARY}'")
    return ConnParams(
        host=pg.host, port=pg.port, user="backup_canary", password=PG_CANARY, sslmode="disable"
    )


def _run(
    config: Path, fmt: str, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "backdrill", "--log-format", fmt, "--config", str(config), *args],
        capture_output=True,
        env=env,
        timeout=180,
        check=False,
    )


def test_canary_secrets_appear_in_no_output_report_object_or_argv(
    tmp_path: Path,
    canary_role: ConnParams,
    sample: SampleInfo,
    s3_endpoint: str,
    bucket: str,
    work_dir: Path,
) -> None:
    identity = pyrage.x25519.Identity.generate()
    age_canary = str(identity)
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    for name, value in {
        "pg": PG_CANARY,
        "s3": S3_CANARY,
        "hook": HOOK_CANARY,
        "age": age_canary,
    }.items():
        (secrets_dir / name).write_text(value + "\n")
    s3_client(s3_endpoint).put_bucket_versioning  # noqa: B018 - the bucket exists
    repo = Repo(f"s3://{bucket}/prod", {})
    reports = tmp_path / "reports"
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "postgres": {
                    "host": canary_role.host,
                    "port": canary_role.port,
                    "user": canary_role.user,
                    "password_file": str(secrets_dir / "pg"),
                    "sslmode": "disable",
                    "databases": [sample.database],
                },
                "storage": {
                    "url": repo.url,
                    "endpoint_url": s3_endpoint,
                    "region": "us-east-1",
                    "access_key_id": S3_KEY_ID,
                    "secret_access_key_file": str(secrets_dir / "s3"),
                    "encryption": {
                        "recipients": [str(identity.to_public())],
                        "identity_file": str(secrets_dir / "age"),
                    },
                },
                "notify": {"webhook_url_file": str(secrets_dir / "hook")},
                "drill": {"work_dir": str(work_dir), "report_dir": str(reports)},
                "files": {"source": str(sample.filestore)},
            }
        )
    )
    target = f"canary_target_{secrets.token_hex(3)}"
    env = {**os.environ, "PGPASSWORD": PG_CANARY}
    good_dsn = (
        f"host={canary_role.host} port={canary_role.port} user=backup_canary "
        f"dbname={target} sslmode=disable"
    )
    # DSNs quoting the password, to a port where nothing listens: the error quotes them
    bad_dsns = [
        f"postgresql://backup_canary:{PG_CANARY}@127.0.0.1:1/{target}",
        f"host=127.0.0.1 port=1 user=backup_canary password={PG_CANARY} dbname={target}",
    ]
    runs = [
        ("json", ["backup", "db"], 0),
        ("text", ["--debug", "backup", "db"], 0),
        ("json", ["backup", "files"], 0),
        ("text", ["restore", "files", "--to", str(tmp_path / "restored-files")], 0),
        ("json", ["list", "--json"], 0),
        ("text", ["verify", "--all", "--read-data"], 0),
        ("json", ["drill", "run"], 0),
        ("text", ["drill", "history"], 0),
        ("json", ["restore", "db", "--to", good_dsn], 0),
        ("text", ["config", "check"], None),
        ("json", ["restore", "db", "--to", bad_dsns[0]], 5),
        ("text", ["restore", "db", "--to", bad_dsns[1]], 5),
    ]
    stop = threading.Event()
    cmdlines: list[str] = []
    watcher = threading.Thread(target=_watch_cmdlines, args=(stop, cmdlines))
    watcher.start()
    produced: list[tuple[str, bytes]] = []
    try:
        for fmt, args, expected in runs:
            proc = _run(config, fmt, *args, env=env)
            if expected is not None:
                assert proc.returncode == expected, (args, proc.stderr.decode()[-2000:])
            produced += [(f"stdout of {args}", proc.stdout), (f"stderr of {args}", proc.stderr)]
            if expected == 5:
                line = proc.stderr.decode().strip().splitlines()[-1]
                assert "***" in line or "cannot connect" in line, line
    finally:
        stop.set()
        watcher.join()
        drop_database(canary_role, target)
    assert any("pg_dump" in c for c in cmdlines) and any("pg_restore" in c for c in cmdlines)
    produced += [(f"report {p}", p.read_bytes()) for p in reports.rglob("*") if p.is_file()]
    produced += [
        (f"object {k}", read_object(_with_creds(repo, s3_endpoint), k))
        for k in list_keys(_with_creds(repo, s3_endpoint))
    ]
    # backdrill's own argv holds what the test passed (the DSNs quoting a password, the
    # operator's choice); every other process (pg_dump, pg_restore, initdb...) must not
    own = f"{sys.executable}\0-m\0backdrill\0"
    produced += [(f"argv {c[:80]}", c.encode()) for c in cmdlines if not c.startswith(own)]
    assert any("report" in where for where, _ in produced)
    assert any("dump.pgdump.zst" in where for where, _ in produced)
    for canary in (PG_CANARY, S3_CANARY, HOOK_CANARY, age_canary):
        leaks = [where for where, data in produced if canary.encode() in data]
        assert leaks == [], f"{canary[:12]}... leaked into {leaks[:5]}"


def _with_creds(repo: Repo, endpoint: str) -> Repo:
    return Repo(
        repo.url,
        {
            "endpoint_url": endpoint,
            "access_key_id": S3_KEY_ID,
            "secret_access_key": S3_CANARY,
        },
    )
