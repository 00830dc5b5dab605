"""Files snapshots living beside prune and the repository locks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from backdrill.repository.locks import RepoLock, files_scope
from helpers.cli import Cli, Repo
from helpers.files import content, files_config, make_tree
from helpers.filestore import FilestoreOn, assert_restores_source
from helpers.history import storage_of
from helpers.repo import list_keys


def test_prune_reads_real_snapshots_with_symlinks_and_keeps_every_object_they_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo
) -> None:
    source = tmp_path / "filestore"
    make_tree(source, count=10)  # includes a symlink entry, which has no content object
    config = files_config(tmp_path / "c.yaml", repo, str(source))
    cli = Cli(capsys, config)
    doc = yaml.safe_load(config.read_text())
    doc["retention"] = {"days": 30, "min_keep": 1, "grace_hours": 0}
    config.write_text(yaml.safe_dump(doc))
    assert cli("backup", "files").code == 0
    (source / "deep" / "dup").write_bytes(content(500))
    assert cli("backup", "files").code == 0
    objects_before = set(list_keys(repo, "files/objects/"))

    pruned = cli("prune", "--json")
    assert pruned.code == 0, pruned.err
    report = json.loads(pruned.out)
    assert report["deleted"] == []
    assert set(list_keys(repo, "files/objects/")) == objects_before

    assert_restores_source(cli, source, tmp_path / "restored")


def test_backup_files_exits_6_while_another_run_holds_its_source_lock(
    filestore_on: FilestoreOn, local_repo: Repo
) -> None:
    cli = filestore_on(local_repo, count=2).cli
    Path(local_repo.url.removeprefix("file://")).mkdir()
    with (
        storage_of(local_repo) as storage,
        RepoLock(storage, files_scope("filestore"), run_id="other-run", command="backup files"),
    ):
        held = cli("backup", "files")
    assert held.code == 6
    assert "other-run" in held.err
    assert list_keys(local_repo, "files/") == []
    done = cli("backup", "files")
    assert done.code == 0, done.err
    assert list_keys(local_repo, "locks/") == []
