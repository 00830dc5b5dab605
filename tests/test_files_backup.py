"""``backup files`` and ``restore files`` on real storage: local and S3 over HTTP (moto)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from backdrill.files.snapshot import object_key
from backdrill.repository.layout import pack_key
from backdrill.services.backup_files import BackupFilesResult, run_backup_files
from backdrill.services.backup_files_totals import REPLACED
from helpers.cli import Cli, Repo, run_cli
from helpers.files import (
    bucket_contents,
    content,
    files_config,
    make_tree,
    odoo_name,
    run_context,
    s3_options,
    snapshot_entries,
    snapshot_skipped,
    tree_state,
    upload_tree,
)
from helpers.filestore import FilestoreOn, assert_restores_source
from helpers.packs import pack_ids, stored_contents
from helpers.repo import list_keys
from helpers.s3proxy import FaultProxy


def _snapshot(capsys: pytest.CaptureFixture[str], config: Path, index: int = -1) -> dict:
    cli = Cli(capsys, config)
    listed = cli("list", "files", "--json")
    assert listed.code == 0, listed.err
    snapshot_id = json.loads(listed.out)[index]["id"]
    shown = cli("show", snapshot_id, "--json")
    assert shown.code == 0, shown.err
    return json.loads(shown.out)  # type: ignore[no-any-return]


def _objects(repo: Repo) -> set[str]:
    """Every stored content, loose or packed (by the key a loose object of it has)."""
    return stored_contents(repo)


def test_restore_reproduces_a_directory_source_byte_for_byte_with_modes_and_mtimes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo
) -> None:
    source = tmp_path / "filestore"
    make_tree(source)
    config = files_config(tmp_path / "c.yaml", repo, str(source))
    cli = Cli(capsys, config)
    backup = cli("backup", "files")
    assert backup.code == 0, backup.err
    assert "committed snapshot" in backup.out

    restore = assert_restores_source(cli, source, tmp_path / "restored")
    assert "verified" in restore.out and "35 files" in restore.out

    snapshot = _snapshot(capsys, config)
    assert snapshot["file_count"] == 35
    assert snapshot["source_name"] == "filestore"
    forms = {e["path"]: e["stored"] for e in snapshot["entries"] if e["type"] == "file"}
    assert forms["deep/random.bin"] == "raw"
    assert forms[odoo_name(content(1))] == "zstd"
    # identical contents are stored once: 30 + empty + random + private + script
    assert len(_objects(repo)) == 34
    # the small ones in ONE pack (and its index); the empty one is a loose object
    assert len(pack_ids(repo)) == 1
    assert len(list_keys(repo, "files/objects/")) == 1


def test_restore_refuses_a_non_empty_target_unless_forced(
    tmp_path: Path, filestore_on: FilestoreOn, local_repo: Repo
) -> None:
    tree = filestore_on(local_repo, count=3).backed_up()
    source, cli = tree.source, tree.cli
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep").write_text("x")
    refused = cli("restore", "files", "--to", str(target))
    assert refused.code == 1  # Refused: the same code as restore db's non-empty target
    assert f"restore target {target} is not empty" in refused.err
    forced = cli("restore", "files", "--to", str(target), "--force")
    assert forced.code == 0, forced.err
    expected = tree_state(source)
    restored = tree_state(target)
    assert restored.pop("keep")[1] == b"x"
    assert restored == expected


def test_restore_reproduces_an_s3_source_into_a_directory_and_into_a_bucket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo, s3_endpoint: str
) -> None:
    tree = tmp_path / "tree"
    make_tree(tree)
    uploaded = upload_tree(s3_endpoint, "odoo-filestore", "odoo", tree)
    config = files_config(
        tmp_path / "c.yaml", repo, "s3://odoo-filestore/odoo", s3=s3_options(s3_endpoint)
    )
    cli = Cli(capsys, config)
    backup = cli("backup", "files")
    assert backup.code == 0, backup.err
    snapshot = _snapshot(capsys, config)
    assert snapshot["source_name"] == "odoo"
    assert snapshot["entries"], snapshot  # all() of nothing would pass
    assert all(e["etag"] for e in snapshot["entries"])

    target = tmp_path / "restored"
    restore = cli("restore", "files", "--to", str(target))
    assert restore.code == 0, restore.err
    restored = tree_state(target)
    assert {p: s[1] for p, s in restored.items()} == uploaded
    mtimes = {e["path"]: e["mtime_ns"] for e in snapshot["entries"]}
    assert {p: s[3] for p, s in restored.items()} == mtimes

    s3_endpoint_client_bucket = "restored-filestore"
    from helpers.files import s3

    s3(s3_endpoint).create_bucket(Bucket=s3_endpoint_client_bucket)
    to_bucket = cli(
        "restore",
        "files",
        "--to",
        f"s3://{s3_endpoint_client_bucket}/odoo",
    )
    assert to_bucket.code == 0, to_bucket.err
    assert bucket_contents(s3_endpoint, s3_endpoint_client_bucket, "odoo") == uploaded
    again = cli(
        "restore",
        "files",
        "--to",
        f"s3://{s3_endpoint_client_bucket}/odoo",
    )
    assert again.code == 1 and "is not empty" in again.err


def test_unchanged_second_snapshot_reads_and_uploads_nothing_then_exactly_ten_changes(
    filestore_on: FilestoreOn, repo: Repo
) -> None:
    tree = filestore_on(repo, count=60)
    source, config = tree.source, tree.config
    first = run_backup_files(run_context(config))
    assert first.snapshot.files_read == 65 and first.snapshot.new_objects == 64

    before = _objects(repo)
    second = run_backup_files(run_context(config))
    assert second.snapshot.files_read == 0
    assert second.snapshot.bytes_read == 0
    assert second.snapshot.uploaded_bytes == 0 and second.snapshot.new_objects == 0
    assert second.reused == 65
    assert _objects(repo) == before
    assert snapshot_entries(config, second.snapshot) == snapshot_entries(config, first.snapshot)
    assert second.snapshot.chunks == first.snapshot.chunks  # the very same chunks

    changed = sorted(p for p in tree_state(source) if p.count("/") == 1 and "deep" not in p)[:10]
    new_contents = []
    for i, rel in enumerate(changed):
        data = content(1000 + i)
        (source / rel).write_bytes(data)
        new_contents.append(data)
    third = run_backup_files(run_context(config))
    assert third.snapshot.files_read == 10
    assert third.snapshot.new_objects == 10
    assert third.snapshot.new_bytes == sum(len(d) for d in new_contents)
    added = _objects(repo) - before
    assert added == {object_key(hashlib.sha256(d).hexdigest(), "zstd") for d in new_contents}


def test_rehash_reads_every_file_but_uploads_nothing_new(tmp_path: Path, local_repo: Repo) -> None:
    source = tmp_path / "filestore"
    make_tree(source, count=5)
    config = files_config(tmp_path / "c.yaml", local_repo, str(source))
    run_backup_files(run_context(config))
    again = run_backup_files(run_context(config), rehash=True)
    assert again.snapshot.files_read == 10
    assert again.snapshot.new_objects == 0 and again.snapshot.uploaded_bytes == 0


def test_unchanged_s3_source_is_compared_by_etag_and_not_read_again(
    tmp_path: Path, local_repo: Repo, s3_endpoint: str
) -> None:
    tree = tmp_path / "tree"
    make_tree(tree, count=8)
    upload_tree(s3_endpoint, "odoo-filestore", "odoo", tree)
    config = files_config(
        tmp_path / "c.yaml", local_repo, "s3://odoo-filestore/odoo", s3=s3_options(s3_endpoint)
    )
    first = run_backup_files(run_context(config))
    assert first.snapshot.files_read == 13
    second = run_backup_files(run_context(config))
    assert second.snapshot.files_read == 0 and second.snapshot.uploaded_bytes == 0
    from helpers.files import s3

    s3(s3_endpoint).put_object(Bucket="odoo-filestore", Key="odoo/deep/dup", Body=b"new")
    third = run_backup_files(run_context(config))
    assert third.snapshot.files_read == 1 and third.snapshot.new_objects == 1


def test_object_missing_from_the_repository_is_read_and_stored_again(
    tmp_path: Path, local_repo: Repo
) -> None:
    source = tmp_path / "filestore"
    make_tree(source, count=3)
    config = files_config(tmp_path / "c.yaml", local_repo, str(source))
    first = run_backup_files(run_context(config))
    key = object_key(hashlib.sha256(content(2)).hexdigest(), "zstd")
    (pack,) = pack_ids(local_repo)  # every small content: their pack is deleted
    (Path(local_repo.url.removeprefix("file://")) / pack_key(pack)).unlink()
    again = run_backup_files(run_context(config))
    packed = [e for e in snapshot_entries(config, first.snapshot) if e.pack is not None]
    assert again.snapshot.files_read == len(packed)
    assert again.snapshot.new_objects == len({e.sha256 for e in packed})
    assert key in _objects(local_repo) and pack_ids(local_repo) - {pack}


def test_file_modified_while_read_is_read_again_and_then_consistent(
    filestore_on: FilestoreOn, local_repo: Repo
) -> None:
    tree = filestore_on(local_repo, count=3)
    source, config = tree.source, tree.config
    target = odoo_name(content(1))
    seen: list[str] = []

    def append_once(path: str) -> None:
        seen.append(path)
        if path == target and seen.count(path) == 1:
            with (source / path).open("ab") as stream:
                stream.write(b" appended while read")

    result = run_backup_files(run_context(config), during_read=append_once)
    entry = next(e for e in snapshot_entries(config, result.snapshot) if e.path == target)
    final = (source / target).read_bytes()
    assert seen.count(target) == 2
    assert entry.status == "ok"
    assert entry.sha256 == hashlib.sha256(final).hexdigest() and entry.size == len(final)
    assert result.snapshot.changed_count == 0


def test_file_modified_or_deleted_during_backup_is_reported_in_the_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    source = tmp_path / "filestore"
    make_tree(source, count=4)
    keeps_changing = odoo_name(content(1))
    deleted = odoo_name(content(2))

    def meddle(path: str) -> None:
        if path == keeps_changing:
            with (source / path).open("ab") as stream:
                stream.write(b"more")
        elif path == deleted:
            (source / path).unlink(missing_ok=True)

    config = files_config(tmp_path / "c.yaml", local_repo, str(source))
    cli = Cli(capsys, config)
    result = run_backup_files(run_context(config), during_read=meddle)
    snapshot = result.snapshot
    assert snapshot.changed_count == 2
    entries = snapshot_entries(config, snapshot)
    entry = next(e for e in entries if e.path == keeps_changing)
    assert entry.status == "changed"
    assert deleted not in {e.path for e in entries}
    assert [(s.path, s.reason) for s in snapshot_skipped(config, snapshot)] == [
        (deleted, "vanished during backup")
    ]
    assert any(keeps_changing in w and "changed while it was read" in w for w in result.warnings)

    shown = cli("show", snapshot.id)
    assert shown.code == 0, shown.err
    assert f"changed during backup: {keeps_changing}" in shown.out
    assert f"skipped: {deleted}: vanished during backup" in shown.out
    # what was stored for the changing file restores and verifies
    target = tmp_path / "restored"
    restore = cli("restore", "files", "--to", str(target))
    assert restore.code == 0, restore.err
    assert hashlib.sha256((target / keeps_changing).read_bytes()).hexdigest() == entry.sha256


def test_symlinks_are_recorded_never_followed_and_special_files_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], filestore_on: FilestoreOn, local_repo: Repo
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not part of the filestore")
    tree = filestore_on(local_repo, files={"a.txt": b"a"})
    source, config, cli = tree.source, tree.config, tree.cli
    (source / "escape").symlink_to(outside)
    (source / "escape-file").symlink_to(outside / "secret.txt")
    os.mkfifo(source / "pipe")
    backup = cli("backup", "files")
    assert backup.code == 0, backup.err
    assert "1 skipped" in backup.out
    assert "skipped pipe: special file (fifo)" in backup.err
    snapshot = _snapshot(capsys, config)
    entries = {e["path"]: e for e in snapshot["entries"]}
    assert set(entries) == {"a.txt", "escape", "escape-file"}
    assert entries["escape"]["type"] == "symlink"
    assert entries["escape"]["target"] == str(outside)
    assert snapshot["bytes_read"] == 1
    target = tmp_path / "restored"
    assert cli("restore", "files", "--to", str(target)).code == 0
    assert os.readlink(target / "escape-file") == str(outside / "secret.txt")


def test_a_large_file_is_streamed_through_spool_and_multipart_and_restores_intact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo
) -> None:
    source = tmp_path / "filestore"
    source.mkdir()
    # 12 MiB: past the in-memory spool, and several 5 MiB parts on S3
    big = b"".join(content(i, 64 * 1024) for i in range(192))
    (source / "big.pdf").write_bytes(big)
    config = files_config(tmp_path / "c.yaml", repo, str(source))
    cli = Cli(capsys, config)
    backup = cli("backup", "files")
    assert backup.code == 0, backup.err
    snapshot = _snapshot(capsys, config)
    (entry,) = snapshot["entries"]
    assert entry["stored"] == "zstd" and entry["stored_size"] < len(big)
    assert_restores_source(cli, source, tmp_path / "restored")


def test_a_read_error_skips_the_file_and_marks_the_snapshot_incomplete(
    filestore_on: FilestoreOn, local_repo: Repo
) -> None:
    config = filestore_on(local_repo, count=3).config
    failing = odoo_name(content(0))

    def io_error(path: str) -> None:
        if path == failing:
            raise OSError(5, "Input/output error")

    result = run_backup_files(run_context(config), during_read=io_error)
    assert [(s.path, s.reason) for s in result.unreadable] == [
        (failing, "cannot read: Input/output error")
    ]
    assert failing not in {e.path for e in snapshot_entries(config, result.snapshot)}
    assert result.snapshot.file_count == 7


def test_a_missing_source_directory_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    config = files_config(tmp_path / "c.yaml", local_repo, str(tmp_path / "not-mounted"))
    cli = Cli(capsys, config)
    result = cli("backup", "files")
    assert result.code == 3
    assert f"files source {tmp_path / 'not-mounted'} is not a directory" in result.err


def test_objects_are_known_from_one_listing_never_a_request_per_file(
    tmp_path: Path, proxied_repo: Repo, fault_proxy: FaultProxy
) -> None:
    source = tmp_path / "filestore"
    make_tree(source, count=40)
    config = files_config(tmp_path / "c.yaml", proxied_repo, str(source))
    first = run_backup_files(run_context(config))
    puts = [p for m, p in fault_proxy.requests if m == "PUT" and "/files/" in p]
    # each new large content once, each pack and its index, each new chunk of entries,
    # the snapshot root
    packs = len(pack_ids(proxied_repo))
    loose = len(list_keys(proxied_repo, "files/objects/"))
    assert len(puts) == loose + 2 * packs + first.snapshot.new_chunks + 1
    assert not [m for m, _p in fault_proxy.requests if m == "HEAD"]

    fault_proxy.requests.clear()
    (source / "deep" / "new.txt").write_bytes(content(0))  # a content already stored
    second = run_backup_files(run_context(config))
    assert second.snapshot.files_read == 1 and second.snapshot.new_objects == 0
    # the lock (locks/files-filestore) aside: only requests about files/
    files_requests = [
        (m, p) for m, p in fault_proxy.requests if "locks" not in p and "locks%2F" not in p
    ]
    methods = [m for m, _p in files_requests]
    listings = [p for m, p in files_requests if m == "GET" and "list-type=2" in p]
    # the snapshot root and the one chunk of entries that changed
    assert methods.count("PUT") == 1 + second.snapshot.new_chunks == 2
    assert "HEAD" not in methods
    # objects, packs, chunks and snapshots listed once each; the previous snapshot read
    # once; the new file's content looked up in the packs' indexes, read once each
    assert sum("files%2Fobjects%2F" in p for p in listings) == 1
    assert sum("files%2Fpacks%2F" in p for p in listings) == 1
    assert sum("files%2Fchunks%2F" in p for p in listings) == 1
    previous_chunks = len(first.snapshot.chunks or [])
    gets = len(listings) + 1 + previous_chunks + packs
    assert len([m for m in methods if m == "GET"]) == gets


def test_restore_picks_a_snapshot_by_id_or_before_a_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], filestore_on: FilestoreOn, local_repo: Repo
) -> None:
    tree = filestore_on(local_repo, files={"doc": b"version 1"})
    source, config, cli = tree.source, tree.config, tree.cli
    first = run_backup_files(run_context(config)).snapshot
    (source / "doc").write_bytes(b"version 2, longer")
    second = run_backup_files(run_context(config)).snapshot
    assert second.files_read == 1

    def restored(*args: str) -> bytes:
        target = tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}"
        result = run_cli(
            capsys, "--config", str(config), "restore", "files", "--to", str(target), *args
        )
        assert result.code == 0, result.err
        return (target / "doc").read_bytes()

    assert restored() == b"version 2, longer"
    assert restored("--snapshot", first.id) == b"version 1"
    between = second.created_at.isoformat().replace("+00:00", "Z")
    assert restored("--before", between) == b"version 1"
    early = cli(
        "restore",
        "files",
        "--to",
        str(tmp_path / "never"),
        "--before",
        "2000-01-01T00:00:00Z",
    )
    assert early.code == 4 and "no committed files snapshot before 2000-01-01" in early.err


def test_a_repository_reached_through_a_symlink_lists_its_objects_and_snapshots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "real-repo").mkdir()
    (tmp_path / "repo-link").symlink_to(tmp_path / "real-repo")
    repo = Repo(url=f"file://{tmp_path / 'repo-link'}")
    source = tmp_path / "filestore"
    make_tree(source, count=3)
    config = files_config(tmp_path / "c.yaml", repo, str(source))
    cli = Cli(capsys, config)
    first = run_backup_files(run_context(config))
    second = run_backup_files(run_context(config))
    assert second.snapshot.files_read == 0 and second.snapshot.new_objects == 0
    listed = cli("list", "files")
    assert listed.code == 0, listed.err
    assert first.snapshot.id in listed.out and second.snapshot.id in listed.out


def test_a_file_replaced_by_a_fifo_or_a_symlink_while_the_backup_runs_is_skipped_not_waited_on(
    tmp_path: Path, local_repo: Repo
) -> None:
    """The kernel is asked to read ahead of the reader, and the reader opens what the
    listing named: a FIFO put in place of a listed file must not block either (no
    writer would ever come), and neither it nor a symlink is stored as the file."""
    source = tmp_path / "filestore"
    source.mkdir()
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        (source / name).write_bytes(name.encode() * 100)
    outside = tmp_path / "outside.txt"
    outside.write_text("not part of the filestore")

    def swap(path: str) -> None:
        if path == "a.txt":
            (source / "b.txt").unlink()
            os.mkfifo(source / "b.txt")
            (source / "c.txt").unlink()
            (source / "c.txt").symlink_to(outside)

    config = files_config(tmp_path / "c.yaml", local_repo, str(source))
    outcome: list[object] = []
    runner = threading.Thread(
        target=lambda: outcome.append(run_backup_files(run_context(config), during_read=swap)),
        daemon=True,
    )
    runner.start()
    runner.join(60)
    if runner.is_alive():  # let the blocked reader go, then fail
        with contextlib.suppress(OSError):
            os.close(os.open(source / "b.txt", os.O_WRONLY | os.O_NONBLOCK))
        runner.join(10)
        pytest.fail("the backup blocked on a FIFO that replaced a listed file")
    (result,) = outcome
    assert isinstance(result, BackupFilesResult)
    stored = {e.path for e in snapshot_entries(config, result.snapshot)}
    assert stored == {"a.txt", "d.txt"}
    reasons = {s.path: s.reason for s in snapshot_skipped(config, result.snapshot)}
    assert reasons == {"b.txt": REPLACED, "c.txt": REPLACED}
    assert result.snapshot.changed_count == 2
