"""``restore files`` from a hostile snapshot: nothing is created outside the target,
no symlink is followed, setuid/setgid/sticky bits only when asked for; and, as root,
owners are given back by name."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path
from typing import Any

import pytest

from backdrill.files.objects import ObjectReader
from backdrill.files.restore import StorageTarget, path_conflict, restore_threads
from backdrill.files.restore_dir import DirTarget
from backdrill.files.snapshot import FileEntry
from backdrill.repository.layout import SNAPSHOT_SUFFIX
from backdrill.storage.local import LocalStorage
from helpers.cli import Cli, Repo
from helpers.counting import CountingStorage
from helpers.filestore import FilestoreOn
from helpers.repo import list_keys
from helpers.snapdoc import read_doc, write_doc

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="setuid files and chown need root")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """An empty directory beside the restore target: a restore must never write in it."""
    path = tmp_path / "outside"
    path.mkdir()
    return path


def _rewrite_snapshot(repo: Repo, edit: Any) -> None:
    (key,) = [k for k in list_keys(repo, "files/") if k.endswith(SNAPSHOT_SUFFIX)]
    doc = read_doc(repo, key)
    edit(doc)
    write_doc(repo, key, doc)


def _restore(cli: Cli, target: Path, *extra: str) -> tuple[int, str]:
    result = cli("restore", "files", "--to", str(target), *extra)
    assert "Traceback" not in result.err
    return result.code, result.err


def test_a_snapshot_symlink_then_a_file_under_it_creates_nothing_outside_the_target(
    tmp_path: Path, filestore_on: FilestoreOn, local_repo: Repo, outside: Path
) -> None:
    tree = filestore_on(local_repo, files={"z/deeper/x": b"payload"})
    (tree.source / "a").symlink_to(outside)
    cli = tree.backed_up().cli

    def under_the_link(doc: dict[str, Any]) -> None:
        for entry in doc["entries"]:
            if entry["path"] == "z/deeper/x":
                entry["path"] = "a/deeper/x"  # a -> outside, then a/deeper/x

    _rewrite_snapshot(local_repo, under_the_link)
    target = tmp_path / "restored"
    code, err = _restore(cli, target)
    assert list(outside.iterdir()) == [], "the restore wrote outside its target"
    assert code == 4, err
    assert "a/deeper/x lies under a" in err
    assert not target.exists() or list(target.iterdir()) == []


def test_a_symlink_already_in_the_target_is_never_followed(
    tmp_path: Path, filestore_on: FilestoreOn, local_repo: Repo, outside: Path
) -> None:
    files = {"a/deeper/x": b"payload", "b": b"fine"}
    cli = filestore_on(local_repo, files=files).backed_up().cli
    target = tmp_path / "restored"
    target.mkdir()
    (target / "a").symlink_to(outside)  # planted before a forced restore
    code, err = _restore(cli, target, "--force")
    assert list(outside.iterdir()) == [], "the restore wrote through a symlink"
    assert code == 4, err
    assert "a is a symlink or a file in the target" in err
    assert (target / "b").read_bytes() == b"fine"
    assert (target / "a").is_symlink()


@needs_root
def test_setuid_setgid_and_sticky_bits_are_restored_only_when_asked_for(
    tmp_path: Path, filestore_on: FilestoreOn, local_repo: Repo
) -> None:
    tree = filestore_on(local_repo, files={"tool": b"#!/bin/sh\nid\n", "plain": b"plain"})
    (tree.source / "tool").chmod(0o6755)
    (tree.source / "plain").chmod(0o1640)
    cli = tree.backed_up().cli

    target = tmp_path / "restored"
    code, err = _restore(cli, target)
    assert code == 0, err
    assert stat.S_IMODE((target / "tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((target / "plain").stat().st_mode) == 0o640

    kept = tmp_path / "kept"
    code, err = _restore(cli, kept, "--keep-special-bits")
    assert code == 0, err
    assert stat.S_IMODE((kept / "tool").stat().st_mode) == 0o6755
    assert stat.S_IMODE((kept / "plain").stat().st_mode) == 0o1640


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip("no unprivileged user on this host")


@needs_root
def test_as_root_owners_are_recorded_and_restored_by_name(
    tmp_path: Path, filestore_on: FilestoreOn, local_repo: Repo
) -> None:
    user = _unprivileged_user()
    tree = filestore_on(local_repo, files={"ab/file": b"attachment"})
    source = tree.source
    (source / "link").symlink_to("ab/file")
    for path in (source / "ab" / "file", source / "link"):
        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
    cli = tree.backed_up().cli

    owners: dict[str, tuple[object, ...]] = {}

    def record(doc: dict[str, Any]) -> None:
        for e in doc["entries"]:
            owners[e["path"]] = (e["owner"], e["uid"], e["gid"])

    _rewrite_snapshot(local_repo, record)
    assert owners["ab/file"] == (user.pw_name, user.pw_uid, user.pw_gid)
    assert owners["link"] == (user.pw_name, user.pw_uid, user.pw_gid)

    target = tmp_path / "restored" / "filestore"
    code, err = _restore(cli, target)
    assert code == 0, err
    for path in (target, target / "ab", target / "ab" / "file", target / "link"):
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid), path

    # a name unknown here: the number recorded stands in for it
    def rename(doc: dict[str, Any]) -> None:
        for e in doc["entries"]:
            e["owner"] = "no-such-user-here"
            e["uid"] = 54321

    _rewrite_snapshot(local_repo, rename)
    by_number = tmp_path / "by-number"
    code, err = _restore(cli, by_number)
    assert code == 0, err
    assert (by_number / "ab" / "file").stat().st_uid == 54321

    # an older snapshot, without owners, still loads and restores (owned by root)
    def strip(doc: dict[str, Any]) -> None:
        for e in doc["entries"]:
            for name in ("uid", "gid", "owner", "group"):
                e.pop(name, None)

    _rewrite_snapshot(local_repo, strip)
    older = tmp_path / "older"
    code, err = _restore(cli, older)
    assert code == 0, err
    assert (older / "ab" / "file").read_bytes() == b"attachment"
    assert (older / "ab" / "file").stat().st_uid == 0


def test_path_conflict_refuses_paths_under_a_symlink_and_duplicates_only() -> None:
    def entry(path: str, kind: str = "file") -> FileEntry:
        target = "elsewhere" if kind == "symlink" else None
        return FileEntry(path=path, type=kind, size=0, mtime_ns=0, mode=0o644, target=target)

    # an S3 source may hold both "a" and "a/x": not refused (only the directory
    # target fails "a/x", naming it)
    assert path_conflict([entry("a"), entry("a/x")]) is None
    assert path_conflict([entry("a", "symlink"), entry("a/b/x")]) == (
        "a/b/x lies under a, which it records as a symlink"
    )
    assert path_conflict([entry("a"), entry("a")]) == "a is recorded twice"


def test_files_are_restored_by_one_thread_only_when_repository_and_target_are_local(
    tmp_path: Path,
) -> None:
    local = LocalStorage(tmp_path / "repo")
    remote = CountingStorage(local)  # no local root: as an S3 store
    assert remote.local_root is None
    directory = DirTarget(tmp_path / "out")
    assert restore_threads(ObjectReader(local), directory, 8) == 1
    assert restore_threads(ObjectReader(local), StorageTarget(local), 8) == 1
    assert restore_threads(ObjectReader(remote), directory, 8) == 8
    assert restore_threads(ObjectReader(local), StorageTarget(remote), 8) == 8
