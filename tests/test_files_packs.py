"""Packs (schema_version 3): small contents many to an object, read by range, found again
through the packs' indexes, checked as hostile, kept whole by prune while referenced."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from backdrill.files.objects import ObjectReader
from backdrill.files.packs import PACK_BLOB_MAX, read_pack_index
from backdrill.repository.layout import pack_index_key, pack_key, split_pack_key
from backdrill.repository.limits import MAX_PACK_INDEX_BYTES, MAX_PACKED_BLOB_BYTES
from backdrill.repository.zstdio import compressed
from backdrill.runtime.errors import IntegrityError, StorageError
from backdrill.runtime.timeutil import utcnow
from backdrill.services.backup_files import run_backup_files
from backdrill.services.context import RunContext
from backdrill.services.prune import run_prune
from helpers.cli import Cli, Repo
from helpers.counting import CountingStorage
from helpers.files import (
    content,
    make_tree,
    pruned_files_config,
    run_context,
    snapshot_entries,
    tree_state,
)
from helpers.history import storage_of
from helpers.packs import content_range, flip_stored_byte, pack_ids, pack_index
from helpers.repo import delete_object, list_keys, read_object, write_object
from helpers.snapdoc import read_doc, write_doc


def _config(tmp_path: Path, repo: Repo, source: Path) -> Path:
    return pruned_files_config(tmp_path / "c.yaml", repo, source)


def _counting(config: Path) -> tuple[RunContext, CountingStorage]:
    ctx = run_context(config)
    counting = CountingStorage(ctx.storage)
    return dataclasses.replace(ctx, storage=counting), counting


def _backed_up(tmp_path: Path, repo: Repo, count: int) -> tuple[Path, Path]:
    """A source of ``count`` + 5 files, backed up once: the source and its config."""
    source = tmp_path / "filestore"
    make_tree(source, count=count)
    config = _config(tmp_path, repo, source)
    run_backup_files(run_context(config))
    return source, config


def _latest_doc(repo: Repo) -> tuple[str, dict[str, Any]]:
    key = max(k for k in list_keys(repo, "files/") if "/snapshots/" in k)
    return key, read_doc(repo, key)


def test_many_small_files_land_in_one_pack_and_one_restores_by_a_single_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo
) -> None:
    source = tmp_path / "filestore"
    make_tree(source, count=300)
    (source / "deep" / "large.bin").write_bytes(os.urandom(PACK_BLOB_MAX + 1))
    config = _config(tmp_path, repo, source)
    first = run_backup_files(run_context(config)).snapshot
    assert first.file_count == 306 and first.schema_version == 3
    (pack,) = pack_ids(repo)  # 303 small contents: one pack, one index
    index = pack_index(repo, pack)
    assert index["pack"] == pack and len(index["blobs"]) == 303
    # the large content and the empty one stay loose objects
    assert len(list_keys(repo, "files/objects/")) == 2

    entries = snapshot_entries(config, first)
    entry = next(e for e in entries if e.pack is not None and e.offset)
    with storage_of(repo) as storage:
        counting = CountingStorage(storage)
        got: list[bytes] = []
        ObjectReader(counting).copy(entry, got.append)
    assert b"".join(got) == (source / entry.path).read_bytes()
    # ONE ranged read of exactly the blob, never the whole pack
    assert counting.reads == {pack_key(pack): 1} and not counting.whole_reads
    assert counting.range_bytes == entry.stored_size

    restored = Cli(capsys, config)("restore", "files", "--to", str(tmp_path / "out"))
    assert restored.code == 0, restored.err
    assert tree_state(tmp_path / "out") == tree_state(source)


def test_an_unchanged_run_reads_no_index_and_a_known_content_is_found_in_a_pack(
    tmp_path: Path, local_repo: Repo
) -> None:
    source, config = _backed_up(tmp_path, local_repo, 20)
    packs = pack_ids(local_repo)
    index_keys = {pack_index_key(p) for p in packs}

    ctx, counting = _counting(config)
    unchanged = run_backup_files(ctx).snapshot
    assert unchanged.files_read == 0 and unchanged.new_objects == 0
    assert not index_keys & set(counting.reads)  # the indexes are loaded lazily

    (source / "deep" / "copy-of-7").write_bytes(content(7))
    ctx, counting = _counting(config)
    known = run_backup_files(ctx).snapshot
    assert known.files_read == 1 and known.new_objects == 0 and known.uploaded_bytes == 0
    assert pack_ids(local_repo) == packs  # no new pack
    assert {k: counting.reads[k] for k in index_keys} == dict.fromkeys(index_keys, 1)
    (copy,) = [e for e in snapshot_entries(config, known) if e.path == "deep/copy-of-7"]
    assert copy.pack in packs


def _damage(repo: Repo, doc_key: str, doc: dict[str, Any], victim: dict[str, Any], how: str) -> str:
    """Damage the stored bytes of ``victim``; what verify (presence) then says, or ''."""
    key, offset, length = content_range(victim)
    if how == "flip":
        flip_stored_byte(repo, victim, at=length // 2)
        return ""
    if how == "truncate":
        write_object(repo, key, read_object(repo, key)[: offset + length - 1])
        return f"pack {key} has {offset + length - 1} bytes"
    if how == "missing":
        delete_object(repo, key)
        return f"pack {key} is missing"
    size = len(read_object(repo, key))
    victim["offset"] = size + 10  # past the end of its pack
    write_doc(repo, doc_key, doc)
    return f"pack {key} has {size} bytes, the blob at offset {size + 10}"


@pytest.mark.parametrize("how", ["flip", "truncate", "missing", "offset-past-end"])
def test_a_damaged_pack_or_entry_exits_4_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo, how: str
) -> None:
    _source, config = _backed_up(tmp_path, local_repo, 10)
    cli = Cli(capsys, config)
    doc_key, doc = _latest_doc(local_repo)
    # the last blob of its pack: cutting the pack short damages it alone
    victim = max((e for e in doc["entries"] if e.get("pack")), key=lambda e: e["offset"])
    path = victim["path"]
    said = _damage(local_repo, doc_key, doc, victim, how)

    presence = cli("verify", "--all")
    if said:
        assert presence.code == 4, presence.out
        assert f"damaged: file {path}: {said}" in presence.out
    else:
        assert presence.code == 0, presence.out  # sizes still match
    read = cli("verify", "--all", "--read-data")
    assert read.code == 4, read.out + read.err
    assert f"damaged: file {path}: " in read.out
    assert "Traceback" not in read.err
    restored = cli("restore", "files", "--to", str(tmp_path / "out"))
    assert restored.code == 4, restored.err
    assert f"file {path}: " in restored.err and "pack files/packs/" in restored.err
    assert "Traceback" not in restored.err
    assert not (tmp_path / "out" / path).exists()


def test_an_entry_naming_an_oversized_blob_is_refused_when_its_chunk_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    _source, config = _backed_up(tmp_path, local_repo, 3)
    cli = Cli(capsys, config)
    doc_key, doc = _latest_doc(local_repo)
    victim = next(e for e in doc["entries"] if e.get("pack"))
    victim["stored_size"] = MAX_PACKED_BLOB_BYTES + 1
    write_doc(local_repo, doc_key, doc)
    restored = cli("restore", "files", "--to", str(tmp_path / "out"))
    assert restored.code == 4, restored.err
    assert f"file {victim['path']!r} names a blob of" in restored.err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def _forge_index(repo: Repo, pack: str, doc: dict[str, Any] | bytes) -> None:
    data = doc if isinstance(doc, bytes) else compressed(json.dumps(doc).encode())
    write_object(repo, pack_index_key(pack), data)


def test_a_forged_index_is_refused_and_its_blobs_are_not_reused(
    tmp_path: Path, local_repo: Repo
) -> None:
    source, config = _backed_up(tmp_path, local_repo, 5)
    (pack,) = pack_ids(local_repo)
    good = pack_index(local_repo, pack)
    forged = [
        ({**good, "pack": secrets.token_hex(32)}, "names pack"),
        ({**good, "size": good["size"] + 1}, "blobs end at"),
        ({**good, "blobs": good["blobs"][1:]}, "at offset"),
        ({**good, "blobs": [{**good["blobs"][0], "offset": -1}]}, "offset"),
        ({**good, "extra": 1}, "extra"),
        (compressed(b" " * (MAX_PACK_INDEX_BYTES + 1)), "limit|exceeds|more than"),
    ]
    with storage_of(local_repo) as storage:
        for doc, problem in forged:
            _forge_index(local_repo, pack, doc)
            with pytest.raises(IntegrityError, match=problem):
                read_pack_index(storage, pack)
    # a backup does not trust it: a known content is stored again, in a new pack
    _forge_index(local_repo, pack, {**good, "pack": secrets.token_hex(32)})
    (source / "deep" / "copy-of-2").write_bytes(content(2))
    again = run_backup_files(run_context(config)).snapshot
    assert again.files_read == 1 and again.new_objects == 1
    assert len(pack_ids(local_repo)) == 2


def test_prune_keeps_a_pack_while_any_blob_is_referenced_then_sweeps_it_and_its_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    source = tmp_path / "filestore"
    source.mkdir()
    (source / "x").write_bytes(content(1))
    (source / "y").write_bytes(content(2))
    config = _config(tmp_path, local_repo, source)
    run_backup_files(run_context(config))
    (first,) = pack_ids(local_repo)
    orphan = secrets.token_hex(32)  # a pack whose index was never written (a crash)
    write_object(local_repo, pack_key(orphan), b"junk")

    (source / "x").write_bytes(content(3))  # y stays in the first pack
    run_backup_files(run_context(config))
    report = run_prune(run_context(config), now=utcnow() + timedelta(days=60))
    assert len([e for e in report.entries if e.action == "delete"]) == 1
    swept = {o.key for o in report.orphans if o.kind == "unreferenced object"}
    assert pack_key(orphan) in swept and pack_key(first) not in swept
    assert first in pack_ids(local_repo) and orphan not in pack_ids(local_repo)
    assert pack_index_key(first) in list_keys(local_repo, "files/packs/")

    (source / "y").write_bytes(content(4))  # now no kept entry names the first pack
    run_backup_files(run_context(config))
    report = run_prune(run_context(config), now=utcnow() + timedelta(days=60))
    swept = {o.key for o in report.orphans if o.kind == "unreferenced object"}
    assert {pack_key(first), pack_index_key(first)} <= swept
    assert first not in pack_ids(local_repo)
    assert pack_index_key(first) not in list_keys(local_repo, "files/packs/")
    restored = Cli(capsys, config)("restore", "files", "--to", str(tmp_path / "out"))
    assert restored.code == 0, restored.err
    assert tree_state(tmp_path / "out") == tree_state(source)


class _FailingPackWrites(CountingStorage):
    """Refuses the ``fail_at``-th pack written (counting from 1), as a full disk would."""

    def __init__(self, inner: Any, fail_at: int) -> None:
        super().__init__(inner)
        self.fail_at = fail_at
        self.pack_writes = 0

    def put_bytes(self, key: str, data: bytes, **options: Any) -> None:
        split = split_pack_key(key)
        if split is not None and not split[1]:
            with self._lock:
                self.pack_writes += 1
                failing = self.pack_writes == self.fail_at
            if failing:
                raise StorageError(f"cannot write {key}: No space left on device")
        super().put_bytes(key, data, **options)


@pytest.mark.parametrize("fail_at", [1, 2])
def test_a_pack_that_cannot_be_written_fails_the_backup_and_commits_no_snapshot(
    tmp_path: Path, local_repo: Repo, fail_at: int
) -> None:
    """Packs are written by writer threads while the files are read: a failed write,
    of a full pack in the middle of the run or of the last one at its end, fails the
    backup, and no snapshot root names a pack that is not there."""
    source = tmp_path / "filestore"
    source.mkdir()
    for i in range(200):  # 100 KB each, incompressible: two full 8 MiB packs and a tail
        (source / f"f{i:03d}.bin").write_bytes(secrets.token_bytes(100_000))
    ctx = run_context(_config(tmp_path, local_repo, source))
    failing = _FailingPackWrites(ctx.storage, fail_at)
    with pytest.raises(StorageError, match="No space left"):
        run_backup_files(dataclasses.replace(ctx, storage=failing))
    assert failing.pack_writes >= fail_at
    assert [key for key in list_keys(local_repo, "files/") if "/snapshots/" in key] == []
