"""Secret hygiene of ``backup db``: a hostile password works and leaks nowhere."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil
import pytest

from backdrill.pg.connection import ConnParams
from backdrill.sample.odoo import SampleInfo
from helpers.cli import Repo, run_cli_process, write_config
from helpers.repo import list_keys, manifests, read_object

HOSTILE = "p@ss:w/rd 'q\"uo$te $HOME sp ace"


@pytest.fixture
def hostile_role(pg: ConnParams) -> ConnParams:
    literal = HOSTILE.replace("'", "''")
    with pg.connect() as conn:
        conn.execute("DROP ROLE IF EXISTS backup_hostile")
        conn.execute(f"CREATE ROLE backup_hostile LOGIN SUPERUSER PASSWORD '{literal}'")
    return ConnParams(
        host=pg.host, port=pg.port, user="backup_hostile", password=HOSTILE, sslmode="disable"
    )


def _watch_cmdlines(stop: threading.Event, seen: list[str]) -> None:
    me = psutil.Process()
    while not stop.is_set():
        for proc in [me, *me.children(recursive=True)]:
            try:
                seen.append("\0".join(proc.cmdline()))
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        for pid in psutil.pids():  # every process on the machine, pg_dump included
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    seen.append(fh.read().decode("utf-8", "replace"))
            except OSError:
                continue
        time.sleep(0.005)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_hostile_password_works_and_appears_in_no_log_manifest_or_argv(
    tmp_path: Path,
    hostile_role: ConnParams,
    shared_sample: SampleInfo,
    local_repo: Repo,
    log_format: str,
) -> None:
    config = write_config(
        tmp_path / "c.yaml", hostile_role, local_repo, databases=[shared_sample.database]
    )
    assert HOSTILE in (tmp_path / "pg_password").read_text()
    stop = threading.Event()
    cmdlines: list[str] = []
    watcher = threading.Thread(target=_watch_cmdlines, args=(stop, cmdlines))
    watcher.start()
    try:
        result = run_cli_process(
            "--debug", "--config", str(config), "backup", "db", log_format=log_format, timeout=120
        )
    finally:
        stop.set()
        watcher.join()
    assert result.code == 0, result.err
    assert any("pg_dump" in c for c in cmdlines), "the watcher never saw pg_dump running"
    assert not [c for c in cmdlines if HOSTILE in c]
    assert HOSTILE not in result.out and HOSTILE not in result.err
    (manifest,) = manifests(local_repo)
    assert manifest["database"] == shared_sample.database
    for key in list_keys(local_repo):
        if key.endswith(".json"):
            assert HOSTILE not in read_object(local_repo, key).decode()


def test_wrong_password_error_is_one_line_without_the_password(
    tmp_path: Path,
    hostile_role: ConnParams,
    sample: SampleInfo,
    local_repo: Repo,
) -> None:
    wrong = ConnParams(
        host=hostile_role.host,
        port=hostile_role.port,
        user="backup_hostile",
        password=HOSTILE + "x",
        sslmode="disable",
    )
    config = write_config(tmp_path / "c.yaml", wrong, local_repo, databases=[sample.database])
    result = run_cli_process(
        "--config", str(config), "backup", "db", log_format="text", timeout=120
    )
    assert result.code == 5
    lines = result.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "backdrill: error: cannot connect to PostgreSQL at backup_hostile@127.0.0.1:"
    )
    assert "password authentication failed" in lines[0]
    assert HOSTILE not in result.err
