"""``backup db --jobs N``: pg_dump's directory format, each file uploaded as it
completes, restorable by drills and verify like a single-file backup."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from backdrill.pg.connection import ConnParams
from backdrill.sample.odoo import SampleInfo
from conftest import drop_database
from helpers.cli import Repo, SampleCli, run_cli, write_config
from helpers.pgobjects import dsn, scratch_database
from helpers.repo import list_keys, manifests, open_uploads, read_object, write_object
from helpers.s3proxy import FaultProxy, Rule


def test_parallel_backup_stores_each_file_and_a_drill_restores_it(
    sample_cli: SampleCli,
    tmp_path: Path,
    shared_sample: SampleInfo,
    repo: Repo,
    work_dir: Path,
) -> None:
    cli = sample_cli(
        repo,
        backup={"work_dir": str(work_dir)},
        drill={"work_dir": str(work_dir), "report_dir": str(tmp_path / "reports")},
    )
    result = cli("backup", "db", "--jobs", "2")
    assert result.code == 0, result.err
    (manifest,) = manifests(repo)
    assert manifest["format"] == "pg_dump-directory+zstd"
    names = {o["name"] for o in manifest["objects"]}
    assert "dump-toc.dat.zst" in names and len(names) > 5
    prefix = f"db/{shared_sample.database}/{manifest['id']}/"
    for obj in manifest["objects"]:
        data = read_object(repo, prefix + obj["name"])
        assert hashlib.sha256(data).hexdigest() == obj["sha256"]
        assert len(data) == obj["stored_size"]
    assert manifest["stored_size"] == sum(o["stored_size"] for o in manifest["objects"])
    assert list(work_dir.iterdir()) == []  # nothing staged is left behind

    verify = cli("verify", "--all", "--read-data")
    assert verify.code == 0, verify.out + verify.err
    drill = cli("drill", "run")
    assert drill.code == 0, drill.out + drill.err
    (report_path,) = (tmp_path / "reports").glob("*/report.json")
    checks = {c["name"]: c["status"] for c in json.loads(report_path.read_text())["checks"]}
    assert checks["row_counts"] == "pass" and checks["checksum"] == "pass"

    # one flipped byte in one table file fails the drill with exit 4, naming the object
    victim = max(manifest["objects"], key=lambda o: o["stored_size"])
    data = bytearray(read_object(repo, prefix + victim["name"]))
    data[len(data) // 2] ^= 0x10
    write_object(repo, prefix + victim["name"], bytes(data))
    broken = cli("drill", "run")
    assert broken.code == 4
    assert victim["name"] in broken.out


def test_parallel_backup_with_an_unusable_work_dir_is_a_config_error(
    sample_cli: SampleCli,
    local_repo: Repo,
    work_dir: Path,
) -> None:
    blocked = work_dir / "not-a-dir"
    blocked.write_text("x")
    cli = sample_cli(backup={"work_dir": str(blocked)})
    result = cli("backup", "db", "--jobs", "2")
    assert result.code == 3
    assert f"backup -> work_dir {blocked}: Not a directory" in result.err
    assert manifests(local_repo) == []


def test_parallel_backup_failing_late_removes_the_objects_it_uploaded(
    sample_cli: SampleCli,
    proxied_repo: Repo,
    fault_proxy: FaultProxy,
    work_dir: Path,
) -> None:
    # toc.dat is uploaded last: by then every table file is stored
    rule = fault_proxy.add(
        Rule(
            "error",
            method="PUT",
            contains="dump-toc.dat.zst",
            status=403,
            code="AccessDenied",
            times=100,
        )
    )
    cli = sample_cli(proxied_repo, backup={"work_dir": str(work_dir)})
    result = cli("backup", "db", "--jobs", "2")
    assert rule.hits >= 1
    assert result.code == 5
    assert "AccessDenied" in result.err
    fault_proxy.clear()
    assert manifests(proxied_repo) == []
    assert [k for k in list_keys(proxied_repo) if not k.startswith(("locks/", "status/"))] == []
    assert open_uploads(proxied_repo) == []
    assert list(work_dir.iterdir()) == []


def test_parallel_backup_of_large_objects_is_drilled_and_restored_byte_for_byte(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    local_repo: Repo,
    work_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with scratch_database(
        pg,
        "lobs",
        "CREATE TABLE doc (id int PRIMARY KEY, body oid NOT NULL)",
        "INSERT INTO doc SELECT i, lo_from_bytea(0, decode(repeat(md5(i::text),"
        " 20000 * i), 'hex')) FROM generate_series(1, 4) AS i",
    ) as name:
        restored = f"{name}_restored"
        try:
            expected = _large_object_digests(pg, name)
            config = write_config(
                tmp_path / "c.yaml",
                pg,
                local_repo,
                databases=[name],
                backup={"work_dir": str(work_dir)},
                drill={"work_dir": str(work_dir), "report_dir": str(tmp_path / "reports")},
            )
            result = run_cli(capsys, "--config", str(config), "backup", "db", "--jobs", "2")
            assert result.code == 0, result.err
            (manifest,) = manifests(local_repo)
            names = {o["name"] for o in manifest["objects"]}
            assert "dump-blobs.toc.zst" in names
            assert len([n for n in names if n.startswith("dump-blob_")]) == 4
            assert list(work_dir.iterdir()) == []

            drill = run_cli(capsys, "--config", str(config), "drill", "run")
            assert drill.code == 0, drill.out + drill.err
            monkeypatch.setenv("PGPASSWORD", pg.password or "")
            restore = run_cli(
                capsys, "--config", str(config), "restore", "db", "--to", dsn(pg, restored)
            )
            assert restore.code == 0, restore.out + restore.err
            assert _large_object_digests(pg, restored) == expected
        finally:
            drop_database(pg, restored)


def _large_object_digests(pg: ConnParams, database: str) -> list[tuple[object, ...]]:
    with pg.with_db(database).connect() as conn:
        query = "SELECT id, length(lo_get(body)), md5(lo_get(body)) FROM doc ORDER BY id"
        return conn.execute(query).fetchall()
