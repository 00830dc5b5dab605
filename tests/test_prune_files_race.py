"""``prune`` and ``backup files`` agree on what may be deleted, for every source, one
being backed up for the first time included: the backup takes its lock, then waits for
no prune to run; prune sweeps objects only while no ``files-*`` lock is held. Each race
is forced deterministically at the point where it used to lose objects."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from backdrill.config.loading import load_config
from backdrill.files.snapshot import object_key
from backdrill.files.source import open_source
from backdrill.repository.layout import DB_ROOT
from backdrill.repository.locks import REPOSITORY_SCOPE, RepoLock
from backdrill.services.backup_files import FileBackup, run_backup_files
from backdrill.services.context import RunContext
from backdrill.services.prune import run_prune
from backdrill.services.prune_report import PruneReport
from backdrill.storage import ObjectInfo, open_repository
from helpers.cli import Cli, Repo
from helpers.files import content, files_config, run_context, snapshot_entries
from helpers.history import put_file_object, storage_of
from helpers.packs import stored_contents
from helpers.repo import list_keys

SHARED = content(7)  # a content the repository holds, referenced by no snapshot


def _setup(tmp_path: Path, repo: Repo) -> tuple[Path, str]:
    """A new source (never backed up) with a file whose content is already stored, as
    an unreferenced object old enough for the sweep (grace 0)."""
    source = tmp_path / "newsource"
    source.mkdir()
    (source / "shared").write_bytes(SHARED)
    (source / "own").write_bytes(content(8))
    config = files_config(tmp_path / "c.yaml", repo, str(source))
    doc = yaml.safe_load(config.read_text())
    doc["retention"] = {"days": 30, "min_keep": 1, "grace_hours": 0}
    config.write_text(yaml.safe_dump(doc))
    with storage_of(repo) as storage:
        sha = put_file_object(storage, SHARED)
    return config, object_key(sha, None)


def _prune_context(config: Path) -> RunContext:
    cfg = load_config(config)
    return RunContext(config=cfg, storage=open_repository(cfg.storage), run_id="prune-run")


def test_prune_during_the_first_backup_of_a_new_source_keeps_the_objects_it_reuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo
) -> None:
    config, shared_key = _setup(tmp_path, repo)
    cli = Cli(capsys, config)
    reports: list[PruneReport] = []
    once = threading.Lock()

    def prune_now(path: str) -> None:
        # the backup listed files/objects/ (the shared content is "stored") and has
        # not committed its snapshot: a prune runs to its end right here (read threads
        # reach this point concurrently: the first one runs it, the others wait)
        del path
        with once:
            if not reports:
                reports.append(run_prune(_prune_context(config)))

    result = run_backup_files(run_context(config), during_read=prune_now)
    assert reports, "the pause point was reached"
    (shared,) = [e for e in snapshot_entries(config, result.snapshot) if e.path == "shared"]
    assert object_key(shared.sha256 or "", shared.stored) == shared_key  # reused, not uploaded
    stored = stored_contents(repo)  # loose objects and packed blobs
    missing = [
        object_key(e.sha256 or "", e.stored)
        for e in snapshot_entries(config, result.snapshot)
        if e.type == "file"
        if object_key(e.sha256 or "", e.stored) not in stored
    ]
    assert missing == []
    assert "files/objects" in reports[0].skipped_scopes
    assert "backup files" in reports[0].skipped_scopes["files/objects"]
    verified = cli("verify", result.snapshot.id)
    assert verified.code == 0, verified.out + verified.err
    # with no backup running, the next prune sweeps again (nothing unreferenced left)
    assert run_prune(_prune_context(config)).skipped_scopes == {}


@pytest.mark.slow
def test_backup_files_waits_for_a_running_prune_or_exits_6_when_it_does_not_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo
) -> None:
    """The other order: a prune that started first (it may not have seen the backup's
    lock) holds ``locks/prune``; the backup must not list objects until it ends."""
    config, _shared_key = _setup(tmp_path, repo)
    cli = Cli(capsys, config)
    with (
        storage_of(repo) as storage,
        RepoLock(storage, REPOSITORY_SCOPE, run_id="prune-run", command="prune"),
    ):
        held = cli("backup", "files", "--wait", "1s")
    assert held.code == 6, held.out + held.err
    assert "prune-run" in held.err
    assert list_keys(repo, "files/newsource/") == []
    assert list_keys(repo, "locks/") == []  # its own lock released
    with storage_of(repo) as storage:
        prune_lock = RepoLock(storage, REPOSITORY_SCOPE, run_id="prune-run", command="prune")
        prune_lock.acquire()
        ending = threading.Timer(1.0, prune_lock.release)
        ending.start()
        try:
            done = cli("backup", "files", "--wait", "60s")
        finally:
            ending.join()
    assert done.code == 0, done.err
    assert "waiting for the lock locks/prune" in done.err


def test_prune_does_not_sweep_what_a_first_snapshot_committed_during_it_references(
    tmp_path: Path, repo: Repo
) -> None:
    """A backup that passed its prune check before this prune started commits the first
    snapshot of its source after prune's first listing and before its re-read: prune
    knows no scope for that source, yet must not sweep the objects it references."""
    config, shared_key = _setup(tmp_path, repo)
    cfg = load_config(config)
    committed: list[str] = []

    class CommitDuringPrune:
        """The repository as prune sees it; the backup commits when prune lists the
        database catalogue: after its first listing of everything, before its re-read."""

        def __init__(self) -> None:
            self.storage = open_repository(cfg.storage)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.storage, name)

        def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
            if prefix == DB_ROOT and not committed:
                source = open_source(str(tmp_path / "newsource"), cfg.files.s3)
                ctx = RunContext(config=cfg, storage=open_repository(cfg.storage), run_id="b")
                committed.append(FileBackup(ctx, source, "newsource").run().snapshot.id)
            return self.storage.list_objects(prefix)

    hooked: Any = CommitDuringPrune()
    report = run_prune(RunContext(config=cfg, storage=hooked, run_id="prune-run"))
    assert committed
    assert shared_key in list_keys(repo, "files/objects/")
    assert "first snapshot" in report.skipped_scopes["files/objects"]
