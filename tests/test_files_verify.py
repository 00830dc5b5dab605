"""``verify`` of files snapshots, and a damaged object stopping ``restore files`` (exit 4)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from backdrill.files.snapshot import object_key
from backdrill.repository.layout import pack_key
from helpers.cli import Cli, Repo
from helpers.files import content, files_config, make_tree, odoo_name
from helpers.packs import flip_stored_byte, pack_ids
from helpers.repo import delete_object


def _backed_up(tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo) -> tuple[Path, str]:
    source = tmp_path / "filestore"
    make_tree(source, count=6)
    config = files_config(tmp_path / "c.yaml", repo, str(source))
    cli = Cli(capsys, config)
    assert cli("backup", "files").code == 0
    listed = cli("list", "files", "--json")
    return config, json.loads(listed.out)[-1]["id"]


def _entry(capsys: pytest.CaptureFixture[str], config: Path, path: str) -> dict[str, Any]:
    cli = Cli(capsys, config)
    shown = cli("show", json.loads(cli("list", "files", "--json").out)[-1]["id"], "--json")
    (entry,) = [e for e in json.loads(shown.out)["entries"] if e["path"] == path]
    return entry  # type: ignore[no-any-return]


@pytest.mark.parametrize("victim", ["compressed", "raw"])
def test_flipped_byte_fails_verify_read_data_and_restore_with_exit_4_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo, victim: str
) -> None:
    config, snapshot_id = _backed_up(tmp_path, capsys, repo)
    cli = Cli(capsys, config)
    if victim == "compressed":
        path, data = odoo_name(content(3)), content(3)
    else:
        path, data = "deep/random.bin", (tmp_path / "filestore" / "deep/random.bin").read_bytes()
    entry = _entry(capsys, config, path)
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["pack"] and entry["stored"] == ("zstd" if victim == "compressed" else "raw")
    flip_stored_byte(repo, entry, at=entry["stored_size"] // 2)

    ok = cli("verify", snapshot_id)
    assert ok.code == 0, ok.err  # sizes still match: only reading the data finds it

    verify = cli("verify", snapshot_id, "--read-data")
    assert verify.code == 4
    assert f"damaged: file {path}: " in verify.out
    errors = verify.error_records
    assert len(errors) == 1
    assert f"1 damaged file(s) in files snapshots: file {path}: " in errors[0]["message"]

    restore = cli("restore", "files", "--to", str(tmp_path / "out"))
    assert restore.code == 4
    assert f"restore found 1 damaged file(s): file {path}: " in restore.err
    assert "Traceback" not in restore.err
    # the damaged file never appears under its name; every other file is restored
    assert not (tmp_path / "out" / path).exists()
    assert (tmp_path / "out" / "deep" / "script.sh").exists() or path == "deep/script.sh"
    assert not list((tmp_path / "out").rglob(".backdrill-restore-*"))


def test_missing_object_fails_verify_naming_every_file_that_shares_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    config, _snapshot_id = _backed_up(tmp_path, capsys, local_repo)
    cli = Cli(capsys, config)
    # the empty file's content: a loose object (never packed)
    key = object_key(hashlib.sha256(b"").hexdigest(), "raw")
    delete_object(local_repo, key)
    verify = cli("verify", "--all")
    assert verify.code == 4
    assert f"damaged: file deep/er/empty: object {key} is missing from the repository" in verify.out


def test_a_missing_pack_fails_verify_naming_every_file_in_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    config, _snapshot_id = _backed_up(tmp_path, capsys, local_repo)
    cli = Cli(capsys, config)
    (pack,) = pack_ids(local_repo)
    delete_object(local_repo, pack_key(pack))
    verify = cli("verify", "--all")
    assert verify.code == 4
    missing = f"pack {pack_key(pack)} is missing from the repository"
    assert f"damaged: file deep/dup: {missing}" in verify.out
    assert f"damaged: file {odoo_name(content(0))}: {missing}" in verify.out
    assert "damaged: file deep/er/empty" not in verify.out


def test_read_data_subset_rehashes_a_part_and_all_passes_when_intact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    config, snapshot_id = _backed_up(tmp_path, capsys, local_repo)
    cli = Cli(capsys, config)
    subset = cli("verify", snapshot_id, "--read-data-subset", "10%")
    assert subset.code == 0, subset.err
    # 10 distinct objects: ceil(10% of 10) = 1 re-hashed
    assert "│ 10      │ 1 (" in subset.out
    full = cli("verify", "--all", "--read-data")
    assert full.code == 0 and "│ 10      │ 10 (" in full.out


def test_verify_unknown_id_is_not_found_and_needs_an_id_or_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    config, _snapshot_id = _backed_up(tmp_path, capsys, local_repo)
    cli = Cli(capsys, config)
    unknown = cli("verify", "20990101T000000Z-000000")
    assert unknown.code == 4
    assert (
        "no backup with id 20990101T000000Z-000000 (neither a database backup nor a files"
        in unknown.err
    )
    neither = cli("verify")
    assert neither.code == 2 and "give either an ID or --all" in neither.err
    bad = cli("verify", "--all", "--read-data-subset", "0")
    assert bad.code == 2 and "--read-data-subset" in bad.err
