"""Hosts with many databases: ``backup db --parallel N`` and ``drill run --all``, against
a real PostgreSQL and S3 over HTTP (moto): each database its own lock, manifest and
report, failures isolated, one summary, one exit code, interrupts clean up every
worker."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import psutil
import pytest
from rich.console import Console

from backdrill.pg.cluster import LocalCluster
from backdrill.pg.connection import ConnParams
from backdrill.runtime.progress import RichReporter
from backdrill.runtime.redact import SECRETS
from backdrill.services.drill_all import summary_markdown, worst_exit_code
from conftest import drop_database, s3_repo
from helpers.cli import Cli, Repo, write_config
from helpers.pgobjects import create_item_database
from helpers.repo import list_keys, manifests
from helpers.waiting import wait_until


@pytest.fixture
def four_databases(pg: ConnParams) -> Iterator[list[str]]:
    tag = secrets.token_hex(3)
    names = [f"many_{tag}_{i}" for i in range(4)]
    for name in names:
        create_item_database(pg, name, 500, label_pad=200)
    yield names
    for name in names:
        drop_database(pg, name)


@pytest.fixture
def many_repo(s3_endpoint: str, bucket: str) -> Repo:
    """An S3 repository, the one every test here backs its databases up to."""
    return s3_repo(s3_endpoint, bucket, "many")


@pytest.fixture
def many_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pg: ConnParams, many_repo: Repo
) -> Callable[..., Cli]:
    """``many_cli(databases, **sections)``: the CLI on ``many_repo``, ``databases``
    configured."""

    def configure(databases: list[str], **sections: Any) -> Cli:
        config = write_config(tmp_path / "c.yaml", pg, many_repo, databases=databases, **sections)
        return Cli(capsys, config)

    return configure


def test_parallel_backup_of_four_databases_commits_each_and_drill_all_chains_evidence(
    tmp_path: Path,
    many_cli: Callable[..., Cli],
    many_repo: Repo,
    four_databases: list[str],
    work_dir: Path,
) -> None:
    reports = tmp_path / "reports"
    drill_section = {"work_dir": str(work_dir), "report_dir": str(reports)}
    cli = many_cli(four_databases, drill=drill_section)
    result = cli("backup", "db", "--parallel", "2")
    assert result.code == 0, result.err
    assert sorted(m["database"] for m in manifests(many_repo)) == four_databases
    assert list_keys(many_repo, "locks/") == []

    result = cli("drill", "run", "--all", "--parallel", "2")
    assert result.code == 0, result.out + result.err
    summary = json.loads((reports / "summary.json").read_text())
    assert summary["exit_code"] == 0
    assert [d["database"] for d in summary["drills"]] == four_databases
    for drill in summary["drills"]:
        assert drill["result"] == "pass", drill
        assert (reports / drill["drill_id"] / "report.json").is_file()
        assert drill["rto_seconds"] > 0
    assert four_databases[0].replace("_", "\\_") in (reports / "summary.md").read_text()
    # four reports written by two drills at a time still form one chain
    result = cli("drill", "history", "--verify")
    assert result.code == 0, result.out + result.err
    assert "4 report(s) intact" in result.out
    assert list(work_dir.iterdir()) == []


def test_one_database_failing_leaves_the_others_committed_and_exits_5_naming_it(
    many_cli: Callable[..., Cli], many_repo: Repo, four_databases: list[str]
) -> None:
    missing = f"gone_{secrets.token_hex(3)}"  # a database the login cannot connect to
    cli = many_cli([four_databases[0], missing, *four_databases[1:]])
    result = cli("backup", "db", "--parallel", "2")
    assert result.code == 5, result.out + result.err
    assert f"1 of 5 backups failed: {missing}" in result.err
    assert sorted(m["database"] for m in manifests(many_repo)) == four_databases
    assert not [k for k in list_keys(many_repo, "db/") if missing in k]
    assert list_keys(many_repo, "locks/") == []


def test_sigterm_during_a_parallel_backup_cleans_up_every_running_dump(
    tmp_path: Path, pg: ConnParams, many_repo: Repo
) -> None:
    """Signalled while two pg_dumps run: exit 143, no pg_dump left, no lock, and every
    stored object belongs to a committed backup."""
    tag = secrets.token_hex(3)
    names = [f"irq_many_{tag}_{i}" for i in range(3)]
    for name in names:
        create_item_database(pg, name, 150_000, label_pad=200)
    try:
        config = write_config(tmp_path / "c.yaml", pg, many_repo, databases=names)
        env = {**os.environ, "PGPASSWORD": pg.password or "", "PYTHONFAULTHANDLER": "1"}
        argv = [sys.executable, "-m", "backdrill", "--config", str(config)]
        proc = subprocess.Popen(
            [*argv, "backup", "db", "--parallel", "2"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        me = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        dumps: list[psutil.Process] = []
        while time.monotonic() < deadline and proc.poll() is None:
            with_name = [c for c in me.children(recursive=True) if c.name() == "pg_dump"]
            if len(with_name) >= 2:
                dumps = with_name
                break
            time.sleep(0.02)
        assert len(dumps) == 2, "two dumps never ran at once"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 143, err.decode()[-3000:]
        assert not [p for p in dumps if p.is_running() and p.status() != "zombie"]
        assert list_keys(many_repo, "locks/") == []
        committed = {f"db/{m['database']}/{m['id']}/" for m in manifests(many_repo)}
        for key in list_keys(many_repo, "db/"):
            assert any(key.startswith(c) for c in committed), f"uncommitted object {key}"
    finally:
        for name in names:
            drop_database(pg, name)


def test_concurrent_progress_tasks_share_one_live_display() -> None:
    """Two databases dumped at once: one bar each, in one live display."""
    console = Console(file=StringIO(), force_terminal=True, width=120)
    reporter = RichReporter(console)
    both_open = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []
    displays: list[int] = []

    def dump(name: str) -> None:
        try:
            with reporter.task(f"dump {name}", total=100) as advance:
                both_open.wait()
                advance(50)
                displays.append(len(console._live_stack))  # rich's stack of live displays
                both_open.wait()
        except BaseException as exc:
            errors.append(exc)
            both_open.abort()

    threads = [threading.Thread(target=dump, args=(n,)) for n in ("db_a", "db_b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert displays == [1, 1]  # not one nested display per task
    assert console.file.getvalue().count("dump db_a") >= 1  # type: ignore[attr-defined]


def test_worst_exit_code_prefers_integrity_then_the_highest() -> None:
    assert worst_exit_code([0, 0]) == 0
    assert worst_exit_code([0, 1, 5]) == 5
    assert worst_exit_code([5, 4, 1]) == 4
    assert worst_exit_code([]) == 0


def test_summary_markdown_escapes_hostile_database_names() -> None:
    row: dict[str, object] = {
        "source": "default",
        "database": "x|y<script>",
        "drill_id": None,
        "result": "error",
        "rto_seconds": None,
        "report": None,
        "error": "boom\n| injected |",
    }
    text = summary_markdown([row], 5)
    (line,) = [ln for ln in text.splitlines() if "script" in ln]
    assert "x\\|y\\<script\\>" in line
    assert line.count(" | ") == 5


def test_the_globals_run_beside_the_last_databases_not_after_them(
    pg_bin_dir: Path, tmp_path: Path, local_repo: Repo
) -> None:
    """``--all --parallel 2``: the roles and tablespaces are queued after every database
    and saved by the first free worker while the last database still runs. Here the
    last one cannot finish: its table is locked until the globals are in the repository
    (saved only after the pool, they would never come and the wait fails)."""
    with LocalCluster(pg_bin_dir, tuning={"fsync": "off", "max_connections": "20"}) as cluster:
        SECRETS.add(cluster.password)
        for name in ("a_small", "b_small", "z_locked"):
            create_item_database(cluster.params, name, 10)
        config = write_config(tmp_path / "c.yaml", cluster.params, local_repo)
        env = {**os.environ, "PGPASSWORD": cluster.params.password or ""}
        argv = [sys.executable, "-m", "backdrill", "--config", str(config)]
        with cluster.params.with_db("z_locked").connect(autocommit=False) as holder:
            holder.execute("LOCK TABLE item IN ACCESS EXCLUSIVE MODE")
            proc = subprocess.Popen(
                [*argv, "backup", "db", "--all", "--parallel", "2"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
            )
            try:
                wait_until(
                    lambda: list_keys(local_repo, "globals/") or proc.poll() is not None,
                    timeout=120,
                    what="the globals saved while z_locked waits for its lock",
                )
                assert proc.poll() is None, "the backup ended while z_locked was locked"
            finally:
                holder.rollback()
            _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-3000:]
    assert len(list_keys(local_repo, "globals/")) == 1
    assert {m["database"] for m in manifests(local_repo)} >= {"a_small", "b_small", "z_locked"}
