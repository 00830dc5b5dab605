"""A files snapshot is valid only where it lies: its id and source name are those of its
key, its entries' objects are ``files/objects/xx/<sha256>``, it was not created in the
future. Forged ones are integrity errors named by key for ``verify``, ``list files``,
``restore files`` and ``prune`` (which then deletes nothing), on both backends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from backdrill.runtime.timeutil import isoformat, new_id, utcnow
from helpers.cli import Cli, Repo
from helpers.files import files_config, make_tree
from helpers.repo import list_keys
from helpers.snapdoc import read_doc, write_doc

FAR = timedelta(days=4 * 365 + 30)


def _backed_up(tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo) -> Path:
    source = tmp_path / "filestore"
    make_tree(source, count=3)
    config = files_config(tmp_path / "c.yaml", repo, str(source))
    cli = Cli(capsys, config)
    doc = yaml.safe_load(config.read_text())
    doc["retention"] = {"days": 30, "min_keep": 1, "grace_hours": 0}
    config.write_text(yaml.safe_dump(doc))
    done = cli("backup", "files")
    assert done.code == 0, done.err
    return config


def _forge_id(doc: dict[str, Any], other: str) -> str:
    doc["id"] = other  # claims to be the committed snapshot, stored under another key
    return new_id()


def _forge_object(doc: dict[str, Any], other: str) -> str:
    del other
    entry = next(e for e in doc["entries"] if e.get("type", "file") == "file")
    entry["sha256"] = "../../../db/odoo/" + "a" * 40
    doc["id"] = new_id()
    return str(doc["id"])


def _forge_future(doc: dict[str, Any], other: str) -> str:
    del other
    moment = utcnow() + FAR
    doc["id"] = new_id(moment)
    doc["created_at"] = isoformat(moment)
    return str(doc["id"])


@pytest.mark.parametrize(
    ("forge", "problem"),
    [
        (_forge_id, "names snapshot"),
        (_forge_object, "sha256"),
        (_forge_future, "in the future"),
    ],
    ids=["id-not-its-key", "object-outside-files-objects", "created-in-the-future"],
)
def test_a_forged_snapshot_is_named_by_verify_list_restore_and_prune_deletes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    repo: Repo,
    forge: Callable[[dict[str, Any], str], str],
    problem: str,
) -> None:
    config = _backed_up(tmp_path, capsys, repo)
    cli = Cli(capsys, config)
    (real_key,) = list_keys(repo, "files/filestore/snapshots/")
    real_id = real_key.rsplit("/", 1)[-1].removesuffix(".json.zst")
    doc = read_doc(repo, real_key)
    stored_as = forge(doc, real_id)
    key = f"files/filestore/snapshots/{stored_as}.json.zst"
    write_doc(repo, key, doc)
    before = list_keys(repo)

    verified = cli("verify", stored_as)
    assert verified.code == 4, verified.out + verified.err
    assert key in verified.err
    assert problem in verified.err
    every = cli("verify", "--all")
    assert every.code == 4, every.out + every.err
    assert key in every.err
    listed = cli("list", "files", "--json")
    assert listed.code == 0
    # ``list`` reads the roots only: a forged entry lies in a chunk (schema_version 2)
    assert (key in listed.err) is (forge is not _forge_object)
    restored = cli(
        "restore",
        "files",
        "--snapshot",
        stored_as,
        "--to",
        str(tmp_path / "restored"),
    )
    assert restored.code == 4, restored.out + restored.err
    assert key in restored.err
    pruned = cli("prune")
    assert pruned.code == 4, pruned.out + pruned.err
    assert key in pruned.err
    assert "refuses to delete anything" in pruned.err
    assert list_keys(repo) == before
    # the real snapshot stays good
    assert cli("verify", real_id).code == 0
