"""Decompression bombs from an attacker who can write to the repository: a small object
that expands far past the size its manifest or snapshot records. Every read stops at
the recorded size (or a document's limit) with exit 4 naming the object, having written
no more than that; the CLI runs as a subprocess whose files cannot grow past
RLIMIT_FSIZE, and whose peak memory is measured."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

import pytest
import zstandard

from backdrill.pg.connection import ConnParams
from backdrill.repository.layout import SNAPSHOT_SUFFIX, pack_key
from backdrill.repository.limits import MAX_MANIFEST_BYTES, MAX_SNAPSHOT_BYTES
from backdrill.runtime.timeutil import new_id
from backdrill.sample.odoo import SampleInfo
from helpers.backed import BackUp
from helpers.cli import Repo, Result, run_cli_limited
from helpers.filestore import FilestoreOn
from helpers.packs import unpack_entries
from helpers.repo import list_keys, write_object
from helpers.snapdoc import read_doc, write_doc

MiB = 1024 * 1024
#: the child's files cannot grow past this: a bomb that is not stopped hits it
FILE_LIMIT = 64 * MiB


def zstd_bomb(size: int, head: bytes = b"", tail: bytes = b"") -> bytes:
    """``head`` + ``size`` bytes of one repeated byte + ``tail``, zstd-compressed in
    one frame: a few hundred MB become a few KB."""
    cobj = zstandard.ZstdCompressor(level=1).compressobj()
    parts = [cobj.compress(head)]
    block = b"a" * MiB
    for _ in range(size // MiB):
        parts.append(cobj.compress(block))
    parts.append(cobj.compress(tail))
    parts.append(cobj.flush())
    return b"".join(parts)


def one_error(result: Result, *names: str) -> str:
    """The run failed with exit 4 and one error record naming every one of ``names``."""
    assert result.code == 4, (result.code, result.err[-2000:])
    assert "Traceback" not in result.err, result.err[-2000:]
    assert len(result.errors) == 1, result.err[-2000:]
    message = str(json.loads(result.errors[0])["message"])
    assert "\n" not in message
    for name in names:
        assert name in message, message
    return message


def _snapshot_doc(repo: Repo) -> tuple[str, dict]:
    (key,) = [k for k in list_keys(repo, "files/") if k.endswith(SNAPSHOT_SUFFIX)]
    return key, read_doc(repo, key)


@pytest.mark.slow
@pytest.mark.parametrize("stored_in", ["pack", "loose object"])
def test_a_filestore_object_bomb_stops_restore_and_verify_at_the_recorded_size(
    tmp_path: Path, filestore_on: FilestoreOn, repo: Repo, stored_in: str
) -> None:
    bomb_and_fine = {"ab/bomb": b"attachment " * 500, "ab/fine": b"another attachment " * 300}
    config = filestore_on(repo, files=bomb_and_fine).backed_up().config
    key, doc = _snapshot_doc(repo)
    if stored_in == "loose object":
        doc = unpack_entries(repo, doc)  # as a backdrill before packs stored it
    (entry,) = [e for e in doc["entries"] if e["path"] == "ab/bomb"]
    assert entry["stored"] == "zstd"
    bomb = zstd_bomb(300 * MiB)
    assert len(bomb) < 64 * 1024
    if stored_in == "pack":  # a pack of its own: the bomb at offset 0
        entry["pack"], entry["offset"] = secrets.token_hex(32), 0
        object_key = pack_key(entry["pack"])
    else:
        object_key = f"files/objects/{entry['sha256'][:2]}/{entry['sha256']}"
    write_object(repo, object_key, bomb)
    entry["stored_size"] = len(bomb)  # only the size of the content lies now
    write_doc(repo, key, doc)

    target = tmp_path / "restored"
    restored, _rss = run_cli_limited(
        "--config", str(config), "restore", "files", "--to", str(target), file_size=FILE_LIMIT
    )
    message = one_error(restored, object_key, "ab/bomb")
    assert "decompresses to more than" in message
    assert (target / "ab" / "fine").read_bytes() == b"another attachment " * 300
    written = [p for p in target.rglob("*") if p.is_file()]
    assert [p.name for p in written] == ["fine"], "the bomb left a file behind"

    verified, _rss = run_cli_limited(
        "--config", str(config), "verify", doc["id"], "--read-data", file_size=FILE_LIMIT
    )
    one_error(verified, object_key, "ab/bomb")


def _plant_dump_bomb(repo: Repo, manifest: dict) -> str:
    """The dump replaced by a bomb; the manifest's stored size and sha256 match it, its
    raw size (what the dump decompresses to) is the one lie left."""
    prefix = f"db/{manifest['database']}/{manifest['id']}/"
    key = f"{prefix}dump.pgdump.zst"
    bomb = zstd_bomb(300 * MiB)
    write_object(repo, key, bomb)
    manifest["stored_size"] = len(bomb)
    manifest["sha256"] = hashlib.sha256(bomb).hexdigest()
    assert manifest["raw_size"] < FILE_LIMIT
    write_object(repo, f"{prefix}manifest.json", json.dumps(manifest).encode())
    return key


def test_a_dump_bomb_stops_verify_read_data_at_the_recorded_raw_size(
    back_up: BackUp, sample: SampleInfo, local_repo: Repo
) -> None:
    backed = back_up(local_repo, sample.database)
    config, manifest = backed.config, backed.manifest
    key = _plant_dump_bomb(local_repo, manifest)
    result, _rss = run_cli_limited(
        "--config", str(config), "verify", manifest["id"], "--read-data", file_size=FILE_LIMIT
    )
    message = one_error(result, key)
    assert f"more than the {manifest['raw_size']} bytes recorded" in message


def test_a_custom_format_dump_bomb_stops_restore_db_and_creates_nothing(
    back_up: BackUp, pg: ConnParams, sample: SampleInfo, local_repo: Repo
) -> None:
    backed = back_up(local_repo, sample.database)
    config, manifest = backed.config, backed.manifest
    assert manifest["format"] == "pg_dump-custom+zstd"
    key = _plant_dump_bomb(local_repo, manifest)
    target = f"bombed_{manifest['id'][-6:]}"
    dsn = f"host={pg.host} port={pg.port} user={pg.user} dbname={target} sslmode=disable"
    result, _rss = run_cli_limited(
        "--config",
        str(config),
        "restore",
        "db",
        "--to",
        dsn,
        file_size=FILE_LIMIT,
        env={"PGPASSWORD": pg.password or ""},
    )
    one_error(result, key)
    with pg.connect() as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()]
    assert not [n for n in names if n.startswith(target)], names


@pytest.mark.slow
def test_a_snapshot_document_bomb_is_refused_in_bounded_memory(
    tmp_path: Path, filestore_on: FilestoreOn, local_repo: Repo
) -> None:
    config = filestore_on(local_repo, files={"a": b"a file"}).backed_up().config
    bomb_id = new_id()
    key = f"files/filestore/snapshots/{bomb_id}{SNAPSHOT_SUFFIX}"
    size = 512 * MiB
    bomb = zstd_bomb(size, head=b'{"schema_version": 1, "id": "x", "pad": "', tail=b'"}')
    assert len(bomb) < 128 * 1024
    write_object(local_repo, key, bomb)

    listed, peak = run_cli_limited("--config", str(config), "list", "files")
    assert listed.code == 0, listed.err[-2000:]
    assert key in listed.err and "decompresses to more than" in listed.err
    # the limit (64 MiB) and the interpreter, not the 512 MiB the bomb expands to
    assert peak < MAX_SNAPSHOT_BYTES + 192 * MiB, f"peak RSS {peak // MiB} MiB"

    pruned, peak = run_cli_limited("--config", str(config), "prune", "--dry-run")
    assert "Traceback" not in pruned.err
    assert peak < MAX_SNAPSHOT_BYTES + 192 * MiB, f"peak RSS {peak // MiB} MiB"

    verified, _peak = run_cli_limited("--config", str(config), "verify", "--all")
    one_error(verified, key)
    by_id, _peak = run_cli_limited(
        "--config",
        str(config),
        "restore",
        "files",
        "--snapshot",
        bomb_id,
        "--to",
        str(tmp_path / "out"),
    )
    one_error(by_id, key)


def test_an_oversized_manifest_is_named_and_not_read_past_its_limit(
    filestore_on: FilestoreOn, local_repo: Repo
) -> None:
    cli = filestore_on(local_repo).cli
    key = f"db/prod/{new_id()}/manifest.json"
    write_object(local_repo, key, b" " * (MAX_MANIFEST_BYTES + 1) + b"{}")
    listed = cli("list")
    assert key in listed.err
    assert f"more than the {MAX_MANIFEST_BYTES} bytes its kind may hold" in listed.err
