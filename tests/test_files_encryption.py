"""Client-side encryption of filestore objects: with ``storage.encryption`` every file
content is stored zstd-compressed then age-encrypted under ``<sha256>.age``; backing up
needs the recipients only, reading (restore, verify --read-data, drills) the identity.
Snapshots stay in clear."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyrage
import pytest
import yaml

from backdrill.files.objects import stored_objects
from backdrill.files.plan import plan_backup
from backdrill.files.snapshot import FileEntry, object_key
from backdrill.files.source import SourceItem
from backdrill.pg.connection import ConnParams
from backdrill.repository.zstdio import compressed
from backdrill.runtime.errors import IntegrityError
from backdrill.runtime.timeutil import utcnow
from backdrill.sample.odoo import SampleInfo
from backdrill.services.backup_files import run_backup_files
from backdrill.services.prune import run_prune
from backdrill.services.prune_scopes import parse_snapshot_refs
from helpers.age import encrypted
from helpers.cli import Cli, Repo, write_config
from helpers.files import files_config, make_tree, run_context, snapshot_entries, tree_state
from helpers.filestore import FilestoreOn, assert_restores_source
from helpers.packs import flip_stored_byte, stored_contents
from helpers.repo import list_keys, read_object
from helpers.waiting import wait_until

CANARY = b"CANARY-PLAINTEXT-xyz"
OBJECTS = "files/objects/"


def _config(
    path: Path,
    repo: Repo,
    source: Path,
    recipient: str | None,
    identity_file: Path | None = None,
    **sections: Any,
) -> Path:
    """A files config; ``recipient`` None: a clear repository."""
    if recipient is not None:
        repo = encrypted(repo, recipient, identity_file)
    config = files_config(path, repo, str(source))
    if sections:
        doc = yaml.safe_load(config.read_text())
        config.write_text(yaml.safe_dump({**doc, **sections}))
    return config


def _canary_tree(root: Path) -> bytes:
    """make_tree plus files holding the canary: compressible, inside random bytes, and
    large (several encryption frames, a multipart upload on S3). Returns random bytes
    that must not appear in the repository either."""
    make_tree(root, count=5)
    noise = os.urandom(40_000)
    (root / "canary.txt").write_bytes(CANARY * 5000)
    (root / "canary-in-noise.bin").write_bytes(noise[:20_000] + CANARY + noise[20_000:])
    (root / "big.bin").write_bytes(os.urandom(5 * 1024 * 1024) + CANARY * 100)
    return noise[:64]


def _file_objects(repo: Repo) -> list[str]:
    """Every stored content, loose or packed (by the key a loose object of it has)."""
    return sorted(stored_contents(repo))


def _latest_snapshot(capsys: pytest.CaptureFixture[str], config: Path) -> dict[str, Any]:
    cli = Cli(capsys, config)
    listed = cli("list", "files", "--json")
    assert listed.code == 0, listed.err
    shown = cli("show", json.loads(listed.out)[-1]["id"], "--json")
    assert shown.code == 0, shown.err
    return json.loads(shown.out)  # type: ignore[no-any-return]


def _next_second() -> None:
    """Snapshot ids sort by their second, then a random suffix: a backup taken in a later
    second is surely the previous snapshot of the next backup."""
    second = int(time.time())
    wait_until(lambda: int(time.time()) > second, timeout=5)


def _age_key(data: bytes) -> str:
    return object_key(hashlib.sha256(data).hexdigest(), "age-zstd")


def test_encrypted_filestore_objects_hold_no_plaintext_and_restore_with_the_identity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo, age_keys: tuple[str, Path]
) -> None:
    recipient, identity_file = age_keys
    source = tmp_path / "filestore"
    noise = _canary_tree(source)
    # backing up needs the public key only
    writer = _config(tmp_path / "writer.yaml", repo, source, recipient)
    cli_writer = Cli(capsys, writer)
    backup = cli_writer("backup", "files")
    assert backup.code == 0, backup.err

    keys = list_keys(repo)
    objects = _file_objects(repo)
    assert len(objects) == 12  # 5 + empty + random + private + script + 3 canary files
    assert all(k.endswith(".age") for k in objects), objects
    for key in keys:
        data = read_object(repo, key)
        assert CANARY not in data, key
        assert noise not in data, key
    snapshot = _latest_snapshot(capsys, writer)
    files = [e for e in snapshot["entries"] if e["type"] == "file"]
    assert {e["stored"] for e in files} == {"age-zstd"}
    # the snapshot stays in clear: paths and sizes are listed without the identity
    assert {e["path"]: e["size"] for e in files}["canary.txt"] == len(CANARY) * 5000
    assert cli_writer("verify", snapshot["id"]).code == 0  # presence and sizes

    reader = _config(tmp_path / "reader.yaml", repo, source, recipient, identity_file)
    cli_reader = Cli(capsys, reader)
    verified = cli_reader("verify", snapshot["id"], "--read-data")
    assert verified.code == 0, verified.err
    assert "│ 12      │ 12 (" in verified.out
    restored = assert_restores_source(cli_reader, source, tmp_path / "restored")
    assert identity_file.read_text().splitlines()[-1] not in restored.out + restored.err


@pytest.mark.parametrize("which", ["wrong", "missing"])
def test_a_wrong_or_missing_identity_exits_3_in_one_line_and_writes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    local_repo: Repo,
    age_keys: tuple[str, Path],
    which: str,
) -> None:
    recipient, _right = age_keys
    source = tmp_path / "filestore"
    _canary_tree(source)
    writer = _config(tmp_path / "writer.yaml", local_repo, source, recipient)
    cli_writer = Cli(capsys, writer)
    assert cli_writer("backup", "files").code == 0
    other = tmp_path / "other-identity.txt"
    other.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    reader = _config(
        tmp_path / "reader.yaml",
        local_repo,
        source,
        recipient,
        other if which == "wrong" else None,
    )
    cli_reader = Cli(capsys, reader)
    expected = "is not one of the recipients" if which == "wrong" else "no identity is configured"

    target = tmp_path / "restored"
    restored = cli_reader("restore", "files", "--to", str(target))
    assert restored.code == 3, restored.err
    (error,) = restored.error_records
    assert expected in error["message"], error
    assert "\n" not in error["message"]
    assert not target.exists() or list(target.rglob("*")) == []  # not even a symlink

    verified = cli_reader("verify", "--all", "--read-data")
    assert verified.code == 3, verified.err
    (error,) = verified.error_records
    assert expected in error["message"], error
    assert other.read_text().strip() not in restored.err + restored.out + verified.err


def test_a_flipped_byte_in_an_encrypted_object_exits_4_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo, age_keys: tuple[str, Path]
) -> None:
    recipient, identity_file = age_keys
    source = tmp_path / "filestore"
    _canary_tree(source)
    config = _config(tmp_path / "c.yaml", local_repo, source, recipient, identity_file)
    cli = Cli(capsys, config)
    assert cli("backup", "files").code == 0
    (entry,) = [
        e for e in _latest_snapshot(capsys, config)["entries"] if e["path"] == "canary-in-noise.bin"
    ]
    assert entry["pack"] and entry["stored"] == "age-zstd"  # a packed blob, sealed alone
    flip_stored_byte(local_repo, entry, at=entry["stored_size"] // 2)

    assert cli("verify", "--all").code == 0  # sizes still match
    verified = cli("verify", "--all", "--read-data")
    assert verified.code == 4, verified.err
    assert "damaged: file canary-in-noise.bin: " in verified.out
    assert "fails authentication" in verified.out
    (error,) = verified.error_records
    assert "1 damaged file(s) in files snapshots: file canary-in-noise.bin: " in error["message"]

    target = tmp_path / "restored"
    restored = cli("restore", "files", "--to", str(target))
    assert restored.code == 4, restored.err
    assert "restore found 1 damaged file(s): file canary-in-noise.bin: " in restored.err
    assert "Traceback" not in restored.err
    expected = tree_state(source)
    expected.pop("canary-in-noise.bin")
    assert tree_state(target) == expected  # every other file, and no temporary file


@pytest.mark.slow
def test_incremental_backups_stay_encrypted_and_turning_encryption_on_uploads_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo, age_keys: tuple[str, Path]
) -> None:
    recipient, identity_file = age_keys
    source = tmp_path / "filestore"
    make_tree(source, count=10)
    clear = _config(tmp_path / "clear.yaml", repo, source, None)
    cli_clear = Cli(capsys, clear)
    first = run_backup_files(run_context(clear)).snapshot
    plaintext = set(_file_objects(repo))
    assert first.new_objects == 14 and not any(k.endswith(".age") for k in plaintext)
    _next_second()

    encrypted = _config(tmp_path / "enc.yaml", repo, source, recipient, identity_file)
    cli_encrypted = Cli(capsys, encrypted)
    turned_on = run_backup_files(run_context(encrypted))
    # nothing changed in the source, yet every content is read and uploaded encrypted
    assert turned_on.reused == 0
    assert turned_on.snapshot.files_read == 15 and turned_on.snapshot.new_objects == 14
    files = [e for e in snapshot_entries(encrypted, turned_on.snapshot) if e.type == "file"]
    assert {e.stored for e in files} == {"age-zstd"}
    sealed = set(_file_objects(repo)) - plaintext
    contents = [data for kind, data, *_ in tree_state(source).values() if kind == "file"]
    assert sealed == {_age_key(data) for data in contents}

    again = run_backup_files(run_context(encrypted))
    assert again.reused == 15
    assert again.snapshot.files_read == 0
    assert again.snapshot.uploaded_bytes == 0 and again.snapshot.new_objects == 0
    assert set(_file_objects(repo)) == plaintext | sealed

    (source / "deep" / "dup").write_bytes(b"changed content " * 100)
    changed = run_backup_files(run_context(encrypted)).snapshot
    assert changed.files_read == 1 and changed.new_objects == 1
    assert set(_file_objects(repo)) - plaintext - sealed == {_age_key(b"changed content " * 100)}
    assert_restores_source(cli_encrypted, source, tmp_path / "restored")
    # the clear snapshot still restores from its plaintext objects, with no identity
    old = cli_clear("restore", "files", "--snapshot", first.id, "--to", str(tmp_path / "old"))
    assert old.code == 0, old.err


def test_prune_keeps_the_encrypted_objects_of_kept_snapshots_and_sweeps_the_others(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    filestore_on: FilestoreOn,
    local_repo: Repo,
    age_keys: tuple[str, Path],
) -> None:
    retention = {"days": 30, "min_keep": 1, "grace_hours": 0}
    tree = filestore_on(encrypted(local_repo, *age_keys), count=5, retention=retention)
    source, config, cli = tree.source, tree.config, tree.cli
    # large: a loose object (a small content would share a pack that stays referenced)
    (source / "deep" / "dup").write_bytes(b"only in the first snapshot " * 25_000)
    assert cli("backup", "files").code == 0
    gone = _age_key(b"only in the first snapshot " * 25_000)
    assert gone in _file_objects(local_repo)
    (source / "deep" / "dup").write_bytes(b"in the second snapshot " * 50)
    assert cli("backup", "files").code == 0
    before = set(_file_objects(local_repo))
    kept = _latest_snapshot(capsys, config)

    # 60 days on: the first snapshot expires, the newest stays (min_keep)
    report = run_prune(run_context(config), now=utcnow() + timedelta(days=60))
    assert [e.id for e in report.entries if e.action == "delete"] != []
    assert [e.id for e in report.entries if e.action == "keep"] == [kept["id"]]
    swept = {o.key for o in report.orphans if o.kind == "unreferenced object"}
    # the content only the first snapshot had, and its chunk of entries
    assert {k for k in swept if k.startswith("files/objects/")} == {gone}
    # the first snapshot's small contents share a pack with kept ones: kept whole
    assert all(k.startswith("files/chunks/") for k in swept - {gone})
    assert set(_file_objects(local_repo)) == before - {gone}
    assert all(k.endswith(".age") for k in before)

    assert_restores_source(cli, source, tmp_path / "restored")


def test_drill_checks_the_attachments_of_an_encrypted_filestore(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    sample: SampleInfo,
    local_repo: Repo,
    work_dir: Path,
    age_keys: tuple[str, Path],
) -> None:
    recipient, identity_file = age_keys
    encryption = {"recipients": [recipient], "identity_file": str(identity_file)}
    config = write_config(
        tmp_path / f"c-{secrets.token_hex(2)}.yaml",
        pg,
        Repo(local_repo.url, {**local_repo.storage, "encryption": encryption}),
        databases=[sample.database],
        files={"source": str(sample.filestore)},
        drill={"report_dir": str(tmp_path / "reports"), "work_dir": str(work_dir)},
    )
    cli = Cli(capsys, config)
    assert cli("backup", "db").code == 0
    assert cli("backup", "files").code == 0
    objects = _file_objects(local_repo)
    assert objects and all(k.endswith(".age") for k in objects)

    result = cli("drill", "run")
    assert result.code == 0, result.out + result.err
    (path,) = (tmp_path / "reports").glob("*/report.json")
    checks = {c["name"]: c for c in json.loads(path.read_text())["checks"]}
    assert checks["filestore_restore"]["status"] == "pass"
    assert checks["attachments"]["status"] == "pass"
    assert checks["attachments"]["detail"].startswith(
        f"{sample.attachments} attachments checked, 0 missing, 0 with a wrong sha1"
    )
    assert list(work_dir.iterdir()) == []


def test_one_key_per_form_and_a_backup_reuses_only_objects_of_its_own_form() -> None:
    sha = "ab" * 32
    assert object_key(sha, "zstd") == object_key(sha, "raw") == f"files/objects/ab/{sha}"
    assert object_key(sha, "age-zstd") == f"files/objects/ab/{sha}.age"
    listed = {object_key(sha, "zstd"): 3, object_key("cd" * 32, "age-zstd"): 7, "x": 1}
    assert stored_objects(listed, encrypted=False) == {sha: 3}
    assert stored_objects(listed, encrypted=True) == {"cd" * 32: 7}

    item = SourceItem("f", "file", 3, 10, 0o644)
    clear = FileEntry(path="f", size=3, mtime_ns=10, mode=0o644, sha256=sha, stored="raw")
    clear = clear.model_copy(update={"stored_size": 3})
    sealed = clear.model_copy(update={"stored": "age-zstd"})
    same_sizes = {sha: 3}  # a plaintext and an encrypted object of equal size
    assert plan_backup([item], {"f": clear}, same_sizes).reused == [clear]
    assert plan_backup([item], {"f": clear}, same_sizes, encrypted=True).to_read == [item]
    assert plan_backup([item], {"f": sealed}, same_sizes, encrypted=True).reused == [sealed]
    assert plan_backup([item], {"f": sealed}, same_sizes).to_read == [item]


def test_prune_refs_name_the_object_of_each_form_and_refuse_an_unknown_one() -> None:
    def refs(*entries: dict[str, object]) -> frozenset[str]:
        doc = {"schema_version": 1, "entries": list(entries)}
        key = "files/s/snapshots/20261126T040000Z-1a2b3c.json.zst"
        return parse_snapshot_refs(compressed(json.dumps(doc).encode()), key).objects

    sha = "ef" * 32
    assert refs({"sha256": sha, "stored": "age-zstd"}) == {object_key(sha, "age-zstd")}
    assert refs({"sha256": sha, "stored": "zstd"}, {"sha256": sha}) == {object_key(sha, "zstd")}
    with pytest.raises(IntegrityError, match="unknown stored form 'rot13'"):
        refs({"sha256": sha, "stored": "rot13"})
