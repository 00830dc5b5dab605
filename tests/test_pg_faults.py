"""PostgreSQL faults: a server not accepting connections yet is retried; a connection
lost mid-dump fails the backup cleanly; a database that does not exist and a missing
pg_dump are one clear line each."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

from backdrill.pg.connection import ConnParams
from backdrill.sample.odoo import SampleInfo
from helpers.cli import Repo, SampleCli, run_cli, run_cli_process, write_config
from helpers.repo import list_keys, manifests, open_uploads
from helpers.tcpfwd import LateForwarder

pytestmark = pytest.mark.reliability


def test_postgres_refusing_connections_at_start_is_retried(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    sample: SampleInfo,
    local_repo: Repo,
) -> None:
    late = LateForwarder(pg.host or "127.0.0.1", pg.port or 5432, delay=2.0)
    try:
        params = dataclasses.replace(pg, host="127.0.0.1", port=late.port)
        config = write_config(tmp_path / "c.yaml", params, local_repo, databases=[sample.database])
        result = run_cli(capsys, "--config", str(config), "backup", "db")
    finally:
        late.stop()
    assert result.code == 0, result.err
    records = [json.loads(ln) for ln in result.err.splitlines() if ln.startswith("{")]
    retries = [r for r in records if "connecting to PostgreSQL" in r["message"]]
    assert retries and retries[0]["attempt"] == 1
    assert "Connection refused" in retries[0]["message"] or "refused" in retries[0]["message"]
    (manifest,) = manifests(local_repo)
    assert manifest["database"] == sample.database


def test_a_connection_lost_mid_dump_fails_the_backup_cleanly(
    tmp_path: Path,
    pg: ConnParams,
    sample: SampleInfo,
    repo: Repo,
) -> None:
    """pg_dump waits for a table lock held by the test; the test then terminates every
    backend of the database: pg_dump loses its connection mid-dump."""
    config = write_config(tmp_path / "c.yaml", pg, repo, databases=[sample.database])
    db = pg.with_db(sample.database)
    with db.connect(autocommit=False) as locker:
        locker.execute("LOCK TABLE res_partner IN ACCESS EXCLUSIVE MODE")
        out: dict[str, object] = {}
        runner = threading.Thread(
            target=lambda: out.update(r=run_cli_process("--config", str(config), "backup", "db"))
        )
        runner.start()
        deadline = time.monotonic() + 30
        with pg.connect() as admin:
            while time.monotonic() < deadline:
                waiting = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                    "AND wait_event_type = 'Lock'",
                    (sample.database,),
                ).fetchone()
                if waiting and int(str(waiting[0])) > 0:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("pg_dump never waited for the lock")
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> %s",
                (sample.database, locker.info.backend_pid),
            )
        locker.rollback()
    runner.join(timeout=60)
    result = out["r"]
    assert result.code == 5, result.err  # type: ignore[attr-defined]
    (line,) = result.errors  # type: ignore[attr-defined]
    assert "pg_dump" in line or "connection" in line, line
    assert "Traceback" not in result.err  # type: ignore[attr-defined]
    assert manifests(repo) == []
    assert open_uploads(repo) == []
    assert not [k for k in list_keys(repo) if k.endswith("dump.pgdump.zst")]
    assert list_keys(repo, "locks/") == []
    assert not _pg_dumps_of(sample.database)


def _pg_dumps_of(database: str) -> list[psutil.Process]:
    """pg_dump processes dumping ``database`` (other test runs may share the machine)."""
    found = []
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] != "pg_dump":
            continue
        try:
            if proc.environ().get("PGDATABASE") == database:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_a_database_that_does_not_exist_exits_5_naming_it(sample_cli: SampleCli) -> None:
    cli = sample_cli(database="no_such_db")
    started = time.monotonic()
    result = cli("backup", "db")
    assert result.code == 5
    assert time.monotonic() - started < 5, "a missing database was retried"
    (line,) = result.errors
    assert 'database \\"no_such_db\\" does not exist' in line, line


def test_pg_dump_missing_exits_5_with_one_line(
    sample_cli: SampleCli,
    tmp_path: Path,
    local_repo: Repo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    cli = sample_cli()
    doc = yaml.safe_load(cli.config.read_text())
    doc["postgres"]["bin_dir"] = str(empty)
    cli.config.write_text(yaml.safe_dump(doc))
    result = cli("backup", "db")
    assert result.code == 5, result.err
    (line,) = result.errors
    assert f"no usable pg_dump for PostgreSQL 15 in postgres -> bin_dir {empty}" in line, line
    assert "Traceback" not in result.err
    assert manifests(local_repo) == []
