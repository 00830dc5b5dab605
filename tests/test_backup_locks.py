"""``backup db`` under its lock, a backup killed by SIGKILL and the next prune, and object
lock on every stored object of a backup; against a real PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from backdrill.pg.connection import ConnParams
from backdrill.repository.locks import RepoLock, db_scope
from backdrill.sample.odoo import SampleInfo
from conftest import object_lock_bucket, s3_client, s3_repo
from helpers.cli import Repo, SampleCli, start_cli_process, write_config
from helpers.history import storage_of
from helpers.repo import list_keys, manifests
from helpers.waiting import wait_until


def test_backup_db_exits_6_at_once_naming_the_holder_of_the_database_lock(
    sample_cli: SampleCli,
    shared_sample: SampleInfo,
    local_repo: Repo,
) -> None:
    cli = sample_cli()
    with (
        storage_of(local_repo) as storage,
        RepoLock(
            storage,
            db_scope(shared_sample.database),
            run_id="cron-0300",
            command="backup db",
            host="db1",
        ),
    ):
        started = time.monotonic()
        result = cli("backup", "db")
        assert time.monotonic() - started < 10
    assert result.code == 6
    line = json.loads(result.err.strip().splitlines()[-1])["message"]
    assert f"db-{shared_sample.database} is locked by backup db on host db1" in line
    assert f"pid {os.getpid()}" in line
    assert "run cron-0300" in line
    assert manifests(local_repo) == []


def test_backup_db_with_wait_runs_once_the_lock_is_released(
    sample_cli: SampleCli,
    shared_sample: SampleInfo,
    local_repo: Repo,
) -> None:
    cli = sample_cli()
    with storage_of(local_repo) as storage:
        lock = RepoLock(storage, db_scope(shared_sample.database), run_id="other", command="prune")
        lock.acquire()
        timer = threading.Timer(1.5, lock.release)
        timer.start()
        started = time.monotonic()
        result = cli("backup", "db", "--wait", "30s")
        timer.join()
    assert result.code == 0, result.err
    assert time.monotonic() - started > 1.4
    assert "waiting for the lock" in result.err
    assert len(manifests(local_repo)) == 1
    assert list_keys(local_repo, "locks/") == []
    bad = cli("backup", "db", "--wait", "soon")
    assert bad.code == 2


def _start_backup(config: Path) -> subprocess.Popen[str]:
    return start_cli_process(config, "backup", "db")


def test_two_backup_db_runs_started_together_one_runs_the_other_exits_6(
    tmp_path: Path, pg: ConnParams, large_sample: SampleInfo, local_repo: Repo
) -> None:
    config = write_config(tmp_path / "c.yaml", pg, local_repo, databases=[large_sample.database])
    runs = [_start_backup(config), _start_backup(config)]
    outcomes = [(p.wait(timeout=300), *p.communicate()) for p in runs]
    codes = sorted(code for code, _out, _err in outcomes)
    assert codes == [0, 6], outcomes
    loser_err = next(err for code, _out, err in outcomes if code == 6)
    assert "is locked by backup db on host" in loser_err
    assert "pid " in loser_err
    assert "since " in loser_err
    assert len(manifests(local_repo)) == 1


def test_backup_killed_by_sigkill_leaves_an_orphan_that_the_next_prune_removes(
    sample_cli: SampleCli, large_sample: SampleInfo, local_repo: Repo
) -> None:
    cli = sample_cli(database=large_sample.database, retention={"grace_hours": 0.0003})
    config = cli.config
    proc = _start_backup(config)
    root = Path(local_repo.url.removeprefix("file://"))
    deadline = time.monotonic() + 120
    partial: list[Path] = []
    while time.monotonic() < deadline and not partial:
        partial = [p for p in root.rglob(".partial-dump*") if p.stat().st_size > 0]
        time.sleep(0.02)
    assert partial, "the backup never started writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.communicate()
    assert partial[0].exists()
    assert list_keys(local_repo, "locks/") == [f"locks/db-{large_sample.database}"]
    assert manifests(local_repo) == []
    grace = 0.0003 * 3600
    wait_until(  # the partial upload is older than the grace period (no fixed sleep)
        lambda: time.time() - partial[0].stat().st_mtime > grace + 0.1, timeout=30
    )

    result = cli("prune", "--json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    kinds = {(o["kind"], o["action"]) for o in doc["orphans"]}
    assert ("pending upload", "delete") in kinds
    assert not partial[0].exists()
    assert list(root.rglob(".partial-*")) == []
    assert "process" in result.err and "no longer runs" in result.err  # lock taken over
    assert list_keys(local_repo, "locks/") == []


@pytest.fixture
def locked_bucket_repo(s3_endpoint: str) -> Repo:
    return s3_repo(
        s3_endpoint,
        object_lock_bucket(s3_endpoint),
        part_size_mb=5,
        object_lock={"mode": "GOVERNANCE", "days": 3},
    )


def test_every_stored_object_of_a_backup_gets_object_lock_and_config_check_reports_it(
    sample_cli: SampleCli, large_sample: SampleInfo, locked_bucket_repo: Repo
) -> None:
    repo = locked_bucket_repo
    cli = sample_cli(repo, database=large_sample.database)
    check = cli("config", "check")
    assert check.code == 0, check.out + check.err
    lines = {ln.split("│")[2].strip(): ln for ln in check.out.splitlines() if ln.count("│") > 3}
    assert "enabled" in lines["object lock"]
    assert "refused" in lines["conditional writes (locks)"]

    result = cli("backup", "db")
    assert result.code == 0, result.err
    client: Any = s3_client(repo.storage["endpoint_url"])
    bucket = repo.url.removeprefix("s3://").split("/")[0]
    keys = list_keys(repo, "db/")
    assert any(k.endswith("dump.pgdump.zst") for k in keys)
    assert any(k.endswith("manifest.json") for k in keys)
    (dump_key,) = [k for k in keys if k.endswith("dump.pgdump.zst")]
    size = client.head_object(Bucket=bucket, Key=f"prod/{dump_key}")["ContentLength"]
    assert size > 5 * 1024 * 1024, "the dump went through a multipart upload"
    for key in keys:
        head = client.head_object(Bucket=bucket, Key=f"prod/{key}")
        assert head.get("ObjectLockMode") == "GOVERNANCE", key
        assert head["ObjectLockRetainUntilDate"].timestamp() > time.time() + 2 * 86400
