"""Repository locks on real storage: exclusive, named holder, refresh, release, takeover."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from backdrill.repository.layout import lock_key
from backdrill.repository.locks import LockInfo, RepoLock, probe_conditional_write
from backdrill.runtime.errors import LockHeld
from backdrill.runtime.timeutil import isoformat, utcnow
from backdrill.storage.local import LocalStorage
from helpers.cli import Repo
from helpers.history import storage_of
from helpers.repo import list_keys, read_object, write_object
from helpers.waiting import wait_until


def test_second_lock_fails_at_once_naming_host_pid_run_and_since(repo: Repo) -> None:
    with storage_of(repo) as storage:
        with RepoLock(storage, "db-odoo", run_id="run-one", command="backup db", host="hostA"):
            started = time.monotonic()
            with pytest.raises(LockHeld) as caught:
                RepoLock(storage, "db-odoo", run_id="run-two", command="backup db").acquire()
            assert time.monotonic() - started < 5
        message = str(caught.value)
        assert caught.value.exit_code == 6
        for part in ("backup db on host hostA", f"pid {os.getpid()}", "run run-one", "since "):
            assert part in message
        assert list_keys(repo, "locks/") == []


def test_lock_is_released_when_the_work_raises(repo: Repo) -> None:
    with storage_of(repo) as storage:
        with (
            pytest.raises(RuntimeError),
            RepoLock(storage, "db-odoo", run_id="r", command="backup db"),
        ):
            assert list_keys(repo, "locks/") == ["locks/db-odoo"]
            raise RuntimeError("boom")
        assert list_keys(repo, "locks/") == []


def test_expired_lock_is_taken_over_with_a_warning(
    repo: Repo, caplog: pytest.LogCaptureFixture
) -> None:
    stale = LockInfo(
        scope="db-odoo",
        token="old",
        command="backup db",
        host="elsewhere",
        pid=1,
        run_id="crashed-run",
        created_at=isoformat(utcnow() - timedelta(hours=2)),
        expires_at=isoformat(utcnow() - timedelta(hours=1)),
    )
    write_object(repo, lock_key("db-odoo"), stale.to_bytes())
    with (
        caplog.at_level(logging.WARNING, logger="backdrill"),
        storage_of(repo) as storage,
        RepoLock(storage, "db-odoo", run_id="new-run", command="backup db"),
    ):
        holder = json.loads(read_object(repo, lock_key("db-odoo")))
        assert holder["run_id"] == "new-run"
    assert any("taking over the lock locks/db-odoo: expired" in r.message for r in caplog.records)


def test_lock_of_a_dead_process_on_this_host_is_taken_over(local_repo: Repo) -> None:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(child.stdout)
    with storage_of(local_repo) as storage:
        holder = RepoLock(storage, "prune", run_id="killed", command="prune")
        info = holder._info()
        dead = LockInfo(**{**info.__dict__, "pid": dead_pid})
        write_object(local_repo, lock_key("prune"), dead.to_bytes())
        with RepoLock(storage, "prune", run_id="next", command="prune") as lock:
            assert not lock.lost


@pytest.mark.slow
def test_wait_takes_the_lock_once_the_holder_releases_it(repo: Repo) -> None:
    with storage_of(repo) as storage:
        first = RepoLock(storage, "db-odoo", run_id="first", command="backup db")
        first.acquire()
        timer = threading.Timer(1.0, first.release)
        timer.start()
        started = time.monotonic()
        with RepoLock(
            storage, "db-odoo", run_id="second", command="backup db", wait=timedelta(seconds=30)
        ):
            waited = time.monotonic() - started
            assert json.loads(read_object(repo, lock_key("db-odoo")))["run_id"] == "second"
        timer.join()
        assert 0.9 < waited < 10


@pytest.mark.slow
def test_lock_is_refreshed_while_the_work_runs(local_repo: Repo) -> None:
    with storage_of(local_repo) as storage:
        lock = RepoLock(
            storage, "db-odoo", run_id="r", command="backup db", ttl=timedelta(seconds=0.6)
        )
        with lock:
            first = json.loads(read_object(local_repo, lock_key("db-odoo")))["expires_at"]
            wait_until(  # refreshed well before the 0.6 s TTL runs out
                lambda: (
                    json.loads(read_object(local_repo, lock_key("db-odoo")))["expires_at"] != first
                ),
                timeout=10,
            )
            later = json.loads(read_object(local_repo, lock_key("db-odoo")))["expires_at"]
            assert later > first
            # still ours and still valid: another run is refused
            with pytest.raises(LockHeld):
                RepoLock(storage, "db-odoo", run_id="x", command="prune").acquire()


def test_conditional_write_probe_passes_on_local_and_s3(repo: Repo) -> None:
    with storage_of(repo) as storage:
        result = probe_conditional_write(storage)
    assert result.ok, result.detail
    assert list_keys(repo, "locks/") == []


class _IgnoresIfNoneMatch(LocalStorage):
    """A store that accepts If-None-Match and ignores it (as some S3 clones do)."""

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        super().put_bytes(key, data)


def test_conditional_write_probe_says_clearly_when_the_store_ignores_it(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    storage = _IgnoresIfNoneMatch(tmp_path / "repo")
    result = probe_conditional_write(storage)
    assert not result.ok
    assert "ignores If-None-Match" in result.detail
    # even there, a held lock is read before writing: the second run is refused
    with (
        RepoLock(storage, "db-odoo", run_id="one", command="backup db"),
        pytest.raises(LockHeld),
    ):
        RepoLock(storage, "db-odoo", run_id="two", command="backup db").acquire()
