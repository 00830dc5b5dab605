"""The two internal errors seen in issue 13: a DSN whose port is no port, and a dangling
symlink with a file under it (in a filestore source, and in an altered snapshot)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers.cli_env import cli, fresh_env
from helpers.snapdoc import read_doc, write_doc


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u@127.0.0.1:notaport/db",
        "postgresql://u@127.0.0.1:99999999/db",
        "postgresql://u@127.0.0.1:0/db",
        "host=127.0.0.1 port=abc dbname=db",
        "host=a,b port=5432,5433 dbname=db",
        "host=127.0.0.1 port=٥٤٣٢ dbname=db",
    ],
)
def test_restore_db_to_a_dsn_whose_port_is_no_port_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dsn: str
) -> None:
    env = fresh_env(tmp_path)
    result = cli(capsys, env, "restore", "db", "--to", dsn)
    assert result.code == 3, result.err
    (line,) = result.errors
    assert "the DSN's port is not a port number" in json.loads(line)["message"]


def test_a_dangling_symlink_beside_a_directory_and_a_symlink_to_it_back_up_and_restore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = fresh_env(tmp_path)  # src: d/file, dangling -> nowhere, dirlink -> d
    assert cli(capsys, env, "backup", "files").code == 0
    out = env.root / "out"
    assert cli(capsys, env, "restore", "files", "--to", str(out)).code == 0
    assert os.readlink(out / "dangling") == "nowhere"
    assert os.readlink(out / "dirlink") == "d"
    assert (out / "d" / "file").read_bytes() == b"attachment"
    assert cli(capsys, env, "verify", "--all", "--read-data").code == 0


def test_a_snapshot_with_a_file_under_a_dangling_symlink_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = fresh_env(tmp_path)
    assert cli(capsys, env, "backup", "files").code == 0
    (snap,) = env.repo_dir.glob("files/*/snapshots/*.json.zst")
    key = snap.relative_to(env.repo_dir).as_posix()
    doc = read_doc(env.repo, key)  # the entries, from the snapshot's chunks
    (file_entry,) = [e for e in doc["entries"] if e["path"] == "d/file"]
    doc["entries"].append({**file_entry, "path": "dangling/file"})
    write_doc(env.repo, key, doc)
    out = env.root / "out"
    result = cli(capsys, env, "restore", "files", "--to", str(out))
    assert result.code == 4
    assert "dangling/file lies under dangling" in json.loads(result.errors[-1])["message"]
    assert not out.exists() or list(out.iterdir()) == []
    assert cli(capsys, env, "backup", "files").code == 0  # the next backup is not stopped
