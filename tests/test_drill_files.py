"""Drills restore the filestore snapshot taken after the database backup and check
every Odoo attachment against it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backdrill.pg.connection import ConnParams
from backdrill.sample.odoo import SampleInfo
from helpers.cli import Cli, Repo, Result, write_config


def backed_up_with_files(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    sample: SampleInfo,
    repo: Repo,
    work_dir: Path,
) -> Path:
    config = write_config(
        tmp_path / "c.yaml",
        pg,
        repo,
        databases=[sample.database],
        files={"source": str(sample.filestore)},
        drill={"report_dir": str(tmp_path / "reports"), "work_dir": str(work_dir)},
    )
    cli = Cli(capsys, config)
    assert cli("backup", "db").code == 0
    return config


def drill_report(tmp_path: Path) -> dict[str, object]:
    (path,) = (tmp_path / "reports").glob("*/report.json")
    return json.loads(path.read_text())


def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> Result:
    cli = Cli(capsys, config)
    return cli(*args)


def test_drill_checks_every_attachment_against_the_restored_filestore(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    sample: SampleInfo,
    repo: Repo,
    work_dir: Path,
) -> None:
    config = backed_up_with_files(tmp_path, capsys, pg, sample, repo, work_dir)
    assert run(capsys, config, "backup", "files").code == 0
    result = run(capsys, config, "drill", "run")
    assert result.code == 0, result.out + result.err
    report = drill_report(tmp_path)
    checks = {c["name"]: c for c in report["checks"]}  # type: ignore[union-attr]
    assert checks["filestore_restore"]["status"] == "pass"
    assert checks["attachments"]["status"] == "pass"
    assert checks["attachments"]["detail"].startswith(
        f"{sample.attachments} attachments checked, 0 missing, 0 with a wrong sha1"
    )
    assert checks["files_rpo"]["status"] == "pass"
    snapshot = report["files_snapshot"]
    assert isinstance(snapshot, dict)
    assert snapshot["id"] and snapshot["after_backup"] is True
    assert snapshot["files"] == sample.files
    assert 0 <= snapshot["rpo_seconds"] < 600
    assert list(work_dir.iterdir()) == []


def test_drill_fails_naming_an_attachment_missing_from_the_snapshot(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    sample: SampleInfo,
    local_repo: Repo,
    work_dir: Path,
) -> None:
    config = backed_up_with_files(tmp_path, capsys, pg, sample, local_repo, work_dir)
    with pg.with_db(sample.database).connect() as conn:
        row = conn.execute(
            "SELECT id, name, store_fname FROM ir_attachment ORDER BY id LIMIT 1"
        ).fetchone()
    assert row is not None
    att_id, name, store_fname = row
    (sample.filestore / str(store_fname)).unlink()
    assert run(capsys, config, "backup", "files").code == 0
    result = run(capsys, config, "drill", "run")
    assert result.code == 1
    checks = {c["name"]: c for c in drill_report(tmp_path)["checks"]}  # type: ignore[union-attr]
    assert checks["attachments"]["status"] == "fail"
    detail = checks["attachments"]["detail"]
    assert " 0 with a wrong sha1" in detail and "missing: " in detail
    assert f"#{att_id} {name} ({store_fname})" in detail
    assert "FAILED attachments" in result.out


def test_drill_without_a_files_snapshot_fails_the_filestore_check(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    sample: SampleInfo,
    local_repo: Repo,
    work_dir: Path,
) -> None:
    config = backed_up_with_files(tmp_path, capsys, pg, sample, local_repo, work_dir)
    result = run(capsys, config, "drill", "run")
    assert result.code == 1
    checks = {c["name"]: c for c in drill_report(tmp_path)["checks"]}  # type: ignore[union-attr]
    assert checks["filestore_restore"]["status"] == "fail"
    assert "no committed files snapshot" in checks["filestore_restore"]["detail"]
