"""Locks that explain themselves: the held-lock message names holder, since, expiry and
how to clear it; ``backdrill unlock``; malformed lock objects are foreign locks, named."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from backdrill.repository.layout import lock_key
from backdrill.repository.locks import RepoLock
from backdrill.runtime.errors import LockHeld
from backdrill.runtime.timeutil import isoformat, utcnow
from backdrill.sample.odoo import SampleInfo
from backdrill.storage.local import LocalStorage
from helpers.cli import Cli, Repo, Result, SampleCli, repo_config
from helpers.filestore import FilestoreOn
from helpers.history import storage_of
from helpers.repo import list_keys, manifests, read_object, write_object

HOST = socket.gethostname()


def lock_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "scope": "db-odoo",
        "token": "forged",
        "command": "backup db",
        "host": "db7",
        "pid": 4242,
        "run_id": "cron-0300",
        "created_at": "2026-01-01T03:00:00Z",
        "expires_at": "2099-01-01T00:00:00Z",
    }
    doc.update(changes)
    return doc


def put_lock(repo: Repo, scope: str, doc: dict[str, Any] | bytes) -> None:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    write_object(repo, lock_key(scope), data)


def only_config(tmp_path: Path, repo: Repo) -> Path:
    return repo_config(tmp_path / "backdrill.yaml", repo)


def last_message(result: Result) -> str:
    return str(json.loads(result.err.strip().splitlines()[-1])["message"])


def dead_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(child.stdout)


def test_a_forged_lock_expiring_in_2099_is_named_with_its_expiry_and_how_to_clear_it(
    sample_cli: SampleCli,
    shared_sample: SampleInfo,
    local_repo: Repo,
) -> None:
    scope = f"db-{shared_sample.database}"
    put_lock(local_repo, scope, lock_doc(scope=scope))
    cli = sample_cli()
    result = cli("backup", "db")
    assert result.code == LockHeld.exit_code == 6
    message = last_message(result)
    for part in (
        "backup db on host db7",
        "pid 4242",
        "run cron-0300",
        "since 2026-01-01T03:00:00Z",
        "expiring 2099-01-01T00:00:00Z",
        "far past",
        f"backdrill unlock {scope}",
    ):
        assert part in message, message
    assert "internal error" not in result.err
    assert manifests(local_repo) == []


@pytest.mark.parametrize(
    "doc",
    [
        lock_doc(host=HOST, pid=10**30),
        lock_doc(host=HOST, pid="abc"),
        lock_doc(host=HOST, pid=-1),
        lock_doc(host=HOST, pid=True),
        lock_doc(host=HOST, expires_at="soon"),
        lock_doc(host=HOST, expires_at="9999-12-31T23:59:59-05:00"),
        lock_doc(host=HOST, run_id=["x"]),
        {"scope": "db-odoo"},
        [1, 2],
        b"{not json",
        b"\xff\xfe" * 10,
        b"[" * 100_000,
    ],
    ids=[
        "huge-pid",
        "text-pid",
        "negative-pid",
        "bool-pid",
        "bad-expiry",
        "overflowing-expiry",
        "list-run-id",
        "missing-fields",
        "not-an-object",
        "bad-json",
        "binary",
        "deep-json",
    ],
)
def test_a_malformed_lock_is_a_foreign_lock_named_never_an_internal_error(
    local_repo: Repo, doc: dict[str, Any] | bytes
) -> None:
    put_lock(local_repo, "db-odoo", doc)
    with storage_of(local_repo) as storage, pytest.raises(LockHeld) as caught:
        RepoLock(storage, "db-odoo", run_id="r", command="backup db").acquire()
    message = str(caught.value)
    assert "db-odoo is locked by an object backdrill did not write" in message
    assert "backdrill unlock db-odoo --force" in message
    assert list_keys(local_repo, "locks/") == ["locks/db-odoo"]  # not taken over


def test_backup_files_with_a_huge_pid_lock_exits_6_naming_it(
    filestore_on: FilestoreOn, local_repo: Repo
) -> None:
    cli = filestore_on(local_repo, files={"a.txt": b"a"}).cli
    put_lock(
        local_repo, "files-filestore", lock_doc(scope="files-filestore", host=HOST, pid=10**30)
    )
    result = cli("backup", "files")
    assert result.code == 6, result.err
    assert "files-filestore is locked by an object backdrill did not write" in last_message(result)
    assert "internal error" not in result.err


def test_unlock_refuses_a_live_lock_without_force_and_removes_it_with_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo
) -> None:
    cli = Cli(capsys, only_config(tmp_path, repo))
    put_lock(repo, "db-odoo", lock_doc())
    result = cli("unlock", "db-odoo")
    assert result.code == 6
    assert "not removed" in last_message(result) and "--force" in last_message(result)
    assert list_keys(repo, "locks/") == ["locks/db-odoo"]
    result = cli("unlock", "db-odoo", "--force")
    assert result.code == 0, result.err
    assert "removed the lock db-odoo (--force)" in result.out
    assert list_keys(repo, "locks/") == []


@pytest.mark.parametrize("why", ["expired", "dead-process"])
def test_unlock_removes_a_stale_lock_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo, why: str
) -> None:
    if why == "expired":
        doc = lock_doc(expires_at=isoformat(utcnow() - timedelta(minutes=1)))
    else:
        doc = lock_doc(host=HOST, pid=dead_pid())
    put_lock(local_repo, "prune", {**doc, "scope": "prune"})
    result = Cli(capsys, only_config(tmp_path, local_repo))("unlock", "prune")
    assert result.code == 0, result.err
    assert list_keys(local_repo, "locks/") == []


def test_unlock_a_foreign_lock_needs_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    cli = Cli(capsys, only_config(tmp_path, local_repo))
    put_lock(local_repo, "db-odoo", lock_doc(pid="abc"))
    assert cli("unlock", "db-odoo").code == 6
    assert cli("unlock", "db-odoo", "--force").code == 0
    assert list_keys(local_repo, "locks/") == []


@pytest.mark.parametrize(("scope", "code"), [("../manifest", 2), ("", 2), (".probe", 2)])
def test_unlock_refuses_what_is_not_a_scope(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo, scope: str, code: int
) -> None:
    result = Cli(capsys, only_config(tmp_path, local_repo))("unlock", scope)
    assert result.code == code
    assert "is not a lock scope" in last_message(result)


def test_unlock_of_no_lock_names_the_locks_there_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    put_lock(local_repo, "db-odoo", lock_doc())
    result = Cli(capsys, only_config(tmp_path, local_repo))("unlock", "db-other")
    assert result.code == 4
    assert "no lock db-other" in last_message(result)
    assert "locks held: db-odoo" in last_message(result)
    assert json.loads(read_object(local_repo, lock_key("db-odoo")))["token"] == "forged"


def test_a_lock_this_backdrill_wrote_parses_back(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "repo")
    with RepoLock(storage, "db-odoo", run_id="r", command="backup db") as lock:
        with pytest.raises(LockHeld) as caught:
            RepoLock(storage, "db-odoo", run_id="x", command="backup db").acquire()
        assert f"pid {lock._info().pid}" in str(caught.value)
        assert "far past" not in str(caught.value)


def test_a_long_run_id_is_still_a_lock_of_this_backdrill_shown_cut(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "repo")
    with RepoLock(storage, "db-odoo", run_id="r" * 5000, command="backup db") as lock:
        with pytest.raises(LockHeld) as caught:
            RepoLock(storage, "db-odoo", run_id="x", command="backup db").acquire()
        message = str(caught.value)
        assert "did not write" not in message
        assert f"run {'r' * 80}…," in message and "r" * 81 not in message
        assert not lock.lost
