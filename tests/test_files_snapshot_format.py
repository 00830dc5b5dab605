"""The schema_version 3 snapshot format: a small root and content-addressed entry
chunks shared between snapshots, small contents in packs (docs/format.md); schema_version
1 and 2 snapshots (loose objects) taken before the upgrade still restore, verify and
prune beside them, and their objects are reused."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from backdrill.files.chunks import CUT_EVERY, ChunkWriter, cuts_after, iter_entries
from backdrill.files.packs import PACK_BLOB_MAX
from backdrill.files.plan import merge_join
from backdrill.files.snapshot import FileEntry, Snapshot
from backdrill.files.source import SourceItem
from backdrill.repository.layout import chunk_key
from backdrill.repository.zstdio import compressed
from backdrill.runtime.errors import UsageError
from backdrill.runtime.timeutil import utcnow
from backdrill.services.backup_files import run_backup_files
from backdrill.services.prune import run_prune
from backdrill.storage.local import LocalStorage
from helpers.cli import Repo, run_cli
from helpers.files import content, run_context, tree_state
from helpers.filestore import Filestore, FilestoreOn, assert_restores_source
from helpers.packs import pack_ids, unpack_entries
from helpers.repo import delete_object, list_keys, read_object, write_object
from helpers.snapdoc import read_doc, write_doc

#: the retention of every configuration here
RETENTION = {"days": 30, "min_keep": 1, "grace_hours": 0}


def _snapshot_keys(repo: Repo) -> list[str]:
    return [k for k in list_keys(repo, "files/") if "/snapshots/" in k]


def test_a_v3_snapshot_restores_byte_for_byte_and_an_unchanged_run_writes_only_its_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], filestore_on: FilestoreOn, repo: Repo
) -> None:
    tree = filestore_on(repo, count=40, retention=RETENTION)
    source, config = tree.source, tree.config
    (source / "deep" / "large.bin").write_bytes(os.urandom(PACK_BLOB_MAX + 1))
    first = run_backup_files(run_context(config))
    assert first.snapshot.schema_version == 3 and first.snapshot.chunks
    # 44 small contents in one pack; the large one and the empty one loose objects
    assert first.snapshot.file_count == 46 and len(pack_ids(repo)) == 1
    large = hashlib.sha256((source / "deep" / "large.bin").read_bytes()).hexdigest()
    assert {k.rsplit("/", 1)[-1] for k in list_keys(repo, "files/objects/")} == {
        large,
        hashlib.sha256(b"").hexdigest(),
    }
    root = read_doc(repo, first.snapshot.key())
    assert "entries" in root and len(read_object(repo, first.snapshot.key())) < 1024

    before = set(list_keys(repo))
    second = run_backup_files(run_context(config))
    added = set(list_keys(repo)) - before
    # nothing but the new root: no content object, no chunk
    assert added == {second.snapshot.key()}
    assert second.snapshot.new_chunks == 0 and second.snapshot.new_objects == 0
    assert second.snapshot.chunks == first.snapshot.chunks

    assert_restores_source(tree.cli, source, tmp_path / "restored")
    verified = run_cli(capsys, "--config", str(config), "verify", "--all", "--read-data")
    assert verified.code == 0, verified.out + verified.err


def _downgrade_to_v1(repo: Repo, key: str) -> dict[str, Any]:
    """The snapshot at ``key`` as schema_version 1 wrote it: one document, no chunk."""
    doc = unpack_entries(repo, read_doc(repo, key))
    for address in json.loads(_root_json(repo, key))["chunks"]:
        delete_object(repo, chunk_key(address))
    doc["schema_version"] = 1
    doc.pop("new_chunks", None)
    write_doc(repo, key, doc)
    return doc


def _root_json(repo: Repo, key: str) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj().decompress(read_object(repo, key))


def _first_backup(
    filestore_on: FilestoreOn, repo: Repo, only_old: str
) -> tuple[Filestore, Snapshot, Path]:
    """A source of 21 files, one of them (``only_old``) to be deleted after its first
    backup: the source configured, that snapshot, and the path of ``only_old``."""
    tree = filestore_on(repo, count=20, files={only_old: content(777)}, retention=RETENTION)
    return tree, run_backup_files(run_context(tree.config)).snapshot, tree.source / only_old


def _restores(capsys: pytest.CaptureFixture[str], config: Path, target: Path, *args: str) -> None:
    restored = run_cli(
        capsys, "--config", str(config), "restore", "files", *args, "--to", str(target)
    )
    assert restored.code == 0, restored.err


def test_a_v1_snapshot_from_before_the_upgrade_restores_verifies_and_prunes_beside_v2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], filestore_on: FilestoreOn, repo: Repo
) -> None:
    tree, old, only_old = _first_backup(filestore_on, repo, "deep/only-in-v1")
    source, config = tree.source, tree.config
    v1 = _downgrade_to_v1(repo, old.key())
    assert list_keys(repo, "files/chunks/") == []
    old_state = tree_state(source)

    # the upgrade: the next backup plans from the v1 snapshot and reads nothing again
    only_old.unlink()
    new = run_backup_files(run_context(config))
    assert new.snapshot.schema_version == 3
    assert new.snapshot.files_read == 0 and new.snapshot.new_objects == 0
    assert new.reused == v1["file_count"] - 1

    _restores(capsys, config, tmp_path / "old", "--snapshot", old.id)
    assert tree_state(tmp_path / "old") == old_state
    verified = run_cli(capsys, "--config", str(config), "verify", "--all", "--read-data")
    assert verified.code == 0, verified.out + verified.err

    # prune now keeps both (within 30 days): every object of either stays
    objects = set(list_keys(repo, "files/objects/"))
    report = run_prune(run_context(config))
    assert [e.id for e in report.entries if e.action == "delete"] == []
    assert set(list_keys(repo, "files/objects/")) == objects
    # 60 days on, the v1 snapshot expires: only the content it alone held is swept,
    # the chunks of the kept v2 snapshot stay
    chunks = set(list_keys(repo, "files/chunks/"))
    report = run_prune(run_context(config), now=utcnow() + timedelta(days=60))
    assert [e.id for e in report.entries if e.action == "delete"] == [old.id]
    gone = {k for k in objects if k.endswith(hashlib.sha256(content(777)).hexdigest())}
    assert len(gone) == 1
    assert set(list_keys(repo, "files/objects/")) == objects - gone
    assert set(list_keys(repo, "files/chunks/")) == chunks
    assert_restores_source(tree.cli, source, tmp_path / "again")


def test_a_v2_snapshot_of_loose_objects_restores_verifies_prunes_and_is_reused_by_v3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], filestore_on: FilestoreOn, repo: Repo
) -> None:
    tree, old, only_old = _first_backup(filestore_on, repo, "deep/only-in-v2")
    source, config = tree.source, tree.config
    # the snapshot as schema_version 2 wrote it: loose objects, chunks, no pack
    v2 = unpack_entries(repo, read_doc(repo, old.key()))
    for address in old.chunks or []:
        delete_object(repo, chunk_key(address))
    v2["schema_version"] = 2
    write_doc(repo, old.key(), v2)
    assert list_keys(repo, "files/packs/") == []
    old_state = tree_state(source)
    objects = set(list_keys(repo, "files/objects/"))

    # the upgrade: unchanged files keep their loose objects; a new file whose content is
    # a loose object already stored is read but not uploaded again; nothing is packed
    only_old.unlink()
    (source / "deep" / "copy-of-3").write_bytes(content(3))
    new = run_backup_files(run_context(config))
    assert new.snapshot.schema_version == 3
    assert new.snapshot.files_read == 1 and new.snapshot.new_objects == 0
    assert (
        list_keys(repo, "files/packs/") == [] and set(list_keys(repo, "files/objects/")) == objects
    )

    _restores(capsys, config, tmp_path / "old", "--snapshot", old.id)
    assert tree_state(tmp_path / "old") == old_state
    verified = run_cli(capsys, "--config", str(config), "verify", "--all", "--read-data")
    assert verified.code == 0, verified.out + verified.err

    # 60 days on, the v2 snapshot expires: only the loose object it alone held is swept
    report = run_prune(run_context(config), now=utcnow() + timedelta(days=60))
    assert [e.id for e in report.entries if e.action == "delete"] == [old.id]
    gone = {k for k in objects if k.endswith(hashlib.sha256(content(777)).hexdigest())}
    assert len(gone) == 1
    assert set(list_keys(repo, "files/objects/")) == objects - gone
    assert_restores_source(tree.cli, source, tmp_path / "again")


def test_a_chunk_that_is_not_its_address_fails_restore_and_verify_and_blocks_prune(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    filestore_on: FilestoreOn,
    local_repo: Repo,
) -> None:
    config = filestore_on(local_repo, count=5, retention=RETENTION).config
    snapshot = run_backup_files(run_context(config)).snapshot
    assert snapshot.chunks
    key = chunk_key(snapshot.chunks[0])
    doc = json.loads(_chunk_json(local_repo, key))
    doc["entries"][0]["size"] += 1  # well-formed, and a lie
    write_object(local_repo, key, compressed(json.dumps(doc).encode()))
    before = list_keys(local_repo)

    restored = run_cli(
        capsys, "--config", str(config), "restore", "files", "--to", str(tmp_path / "r")
    )
    assert restored.code == 4, restored.err
    assert f"chunk {key} does not match its address" in restored.err
    assert not (tmp_path / "r").exists()
    verified = run_cli(capsys, "--config", str(config), "verify", snapshot.id)
    assert verified.code == 4 and "does not match its address" in verified.err
    pruned = run_cli(capsys, "--config", str(config), "prune")
    assert pruned.code == 4 and "refuses to delete anything" in pruned.err
    assert list_keys(local_repo) == before


def _chunk_json(repo: Repo, key: str) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj().decompress(read_object(repo, key))


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../b"])
def test_a_chunk_with_an_unsafe_path_restores_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    filestore_on: FilestoreOn,
    local_repo: Repo,
    path: str,
) -> None:
    config = filestore_on(local_repo, count=3, retention=RETENTION).config
    snapshot = run_backup_files(run_context(config)).snapshot
    doc = read_doc(local_repo, snapshot.key())
    doc["entries"][0]["path"] = path  # re-chunked with a valid address: only the path lies
    write_doc(local_repo, snapshot.key(), doc)
    restored = run_cli(
        capsys, "--config", str(config), "restore", "files", "--to", str(tmp_path / "r")
    )
    assert restored.code == 4, restored.err
    assert "unsafe path" in restored.err
    assert not (tmp_path / "r").exists()
    assert not (tmp_path / "escape").exists()


def _entry(path: str) -> FileEntry:
    return FileEntry(path=path, size=1, mtime_ns=1, mode=0o644, sha256="a" * 64)


def test_chunk_cuts_follow_the_paths_so_one_insertion_rewrites_at_most_two_chunks(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path / "repo")
    (tmp_path / "repo").mkdir()
    paths = sorted(f"{i % 97:02d}/{i:07d}" for i in range(20 * CUT_EVERY))
    assert sum(cuts_after(p) for p in paths) > 5

    def chunks(entries: list[str]) -> list[str]:
        writer = ChunkWriter(storage, lambda _key: False)
        for path in entries:
            writer.add(_entry(path))
        return writer.finish()

    before = chunks(paths)
    after = chunks(sorted([*paths, "50/inserted"]))
    assert len(set(after) - set(before)) <= 2
    assert len(set(before) - set(after)) <= 2


def test_merge_join_pairs_each_item_with_its_previous_entry_and_refuses_disorder() -> None:
    def item(path: str) -> SourceItem:
        return SourceItem(path, "file", 1, 1, 0o644)

    previous = [_entry("a"), _entry("b/x"), _entry("c")]
    pairs = list(merge_join([item("a"), item("b.txt"), item("b/x"), item("d")], previous))
    assert [(i.path, e.path if e else None) for i, e in pairs] == [
        ("a", "a"),
        ("b.txt", None),
        ("b/x", "b/x"),
        ("d", None),
    ]
    with pytest.raises(UsageError, match="not in path order"):
        list(merge_join([item("b"), item("a")], previous))


def test_iter_entries_streams_a_real_snapshot_in_path_order(
    filestore_on: FilestoreOn, local_repo: Repo
) -> None:
    a_and_under_a = {"a.txt": b"sorts between a and a/", "a/x": b"under a/"}
    tree = filestore_on(local_repo, count=30, files=a_and_under_a, retention=RETENTION)
    source, config = tree.source, tree.config
    snapshot = run_backup_files(run_context(config)).snapshot
    paths = [e.path for e in iter_entries(run_context(config).storage, snapshot)]
    assert paths == sorted(paths) and len(paths) == snapshot.file_count + sum(
        1 for p in source.rglob("*") if p.is_symlink()
    )
