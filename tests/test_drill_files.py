"""Drills restore the filestore snapshot taken after the database backup and check
every Odoo attachment against it."""

from __future__ import annotations

from typing import Any

from backdrill.pg.connection import ConnParams
from backdrill.sample.odoo import SampleInfo
from helpers.backed import Backed, BackUp
from helpers.cli import Repo


def backed_up_with_files(back_up: BackUp, sample: SampleInfo, repo: Repo) -> Backed:
    """``sample`` and its filestore configured on ``repo``, the database backed up."""
    return back_up(repo, sample.database, files={"source": str(sample.filestore)})


def checks(backed: Backed) -> dict[str, Any]:
    """The checks of the one drill report, by name."""
    found = backed.only_report()["checks"]
    assert isinstance(found, list)
    return {c["name"]: c for c in found}


def test_drill_checks_every_attachment_against_the_restored_filestore(
    back_up: BackUp, sample: SampleInfo, repo: Repo
) -> None:
    backed = backed_up_with_files(back_up, sample, repo)
    assert backed.cli("backup", "files").code == 0
    result = backed.cli("drill", "run")
    assert result.code == 0, result.out + result.err
    report = backed.only_report()
    found = checks(backed)
    assert found["filestore_restore"]["status"] == "pass"
    assert found["attachments"]["status"] == "pass"
    assert found["attachments"]["detail"].startswith(
        f"{sample.attachments} attachments checked, 0 missing, 0 with a wrong sha1"
    )
    assert found["files_rpo"]["status"] == "pass"
    snapshot = report["files_snapshot"]
    assert isinstance(snapshot, dict)
    assert snapshot["id"] and snapshot["after_backup"] is True
    assert snapshot["files"] == sample.files
    assert 0 <= snapshot["rpo_seconds"] < 600
    assert list(backed.work.iterdir()) == []


def test_drill_fails_naming_an_attachment_missing_from_the_snapshot(
    back_up: BackUp, pg: ConnParams, sample: SampleInfo, local_repo: Repo
) -> None:
    backed = backed_up_with_files(back_up, sample, local_repo)
    with pg.with_db(sample.database).connect() as conn:
        row = conn.execute(
            "SELECT id, name, store_fname FROM ir_attachment ORDER BY id LIMIT 1"
        ).fetchone()
    assert row is not None
    att_id, name, store_fname = row
    (sample.filestore / str(store_fname)).unlink()
    assert backed.cli("backup", "files").code == 0
    result = backed.cli("drill", "run")
    assert result.code == 1
    attachments = checks(backed)["attachments"]
    assert attachments["status"] == "fail"
    detail = attachments["detail"]
    assert " 0 with a wrong sha1" in detail and "missing: " in detail
    assert f"#{att_id} {name} ({store_fname})" in detail
    assert "FAILED attachments" in result.out


def test_drill_without_a_files_snapshot_fails_the_filestore_check(
    back_up: BackUp, sample: SampleInfo, local_repo: Repo
) -> None:
    backed = backed_up_with_files(back_up, sample, local_repo)
    result = backed.cli("drill", "run")
    assert result.code == 1
    filestore_restore = checks(backed)["filestore_restore"]
    assert filestore_restore["status"] == "fail"
    assert "no committed files snapshot" in filestore_restore["detail"]
