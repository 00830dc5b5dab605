"""``backdrill status``: Nagios exit codes for fresh, aging and stale repositories."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backdrill.config.model import Config
from backdrill.policy.ssot import Policy
from backdrill.sample.odoo import SampleInfo
from backdrill.services.facts import DbFacts, DrillFacts, RepoFacts, SnapshotFacts, source_name
from backdrill.services.status import State, evaluate
from helpers.cli import Cli, Repo, SampleCli
from helpers.seed import db_manifest, odoo_config, write_drill, write_manifest, write_snapshot

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def seed(repo: Path, *, db_age: timedelta, files_age: timedelta, drill_age: timedelta) -> None:
    now = datetime.now(UTC)
    write_manifest(repo, "odoo", now - db_age - 24 * H)  # an older one too
    write_manifest(repo, "odoo", now - db_age)
    write_snapshot(repo, "odoo", now - files_age)
    write_drill(repo, now - drill_age)


@pytest.mark.parametrize(
    ("db_age", "files_age", "drill_age", "code", "state"),
    [
        (1 * H, 1 * H, 10 * 24 * H, 0, "OK"),  # fresh
        (22 * H, 1 * H, 10 * 24 * H, 1, "WARNING"),  # db backup past 90 % of 24 h
        (1 * H, 23 * H, 10 * 24 * H, 1, "WARNING"),  # filestore aging
        (1 * H, 1 * H, 90 * 24 * H, 1, "WARNING"),  # drill past 90 % of 95 days
        (25 * H, 1 * H, 10 * 24 * H, 2, "CRITICAL"),  # stale: older than the RPO
        (1 * H, 30 * H, 10 * 24 * H, 2, "CRITICAL"),
        (1 * H, 1 * H, 100 * 24 * H, 2, "CRITICAL"),  # no drill in the last 95 days
    ],
)
def test_status_exit_code_follows_nagios(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    db_age: timedelta,
    files_age: timedelta,
    drill_age: timedelta,
    code: int,
    state: str,
) -> None:
    repo = tmp_path / "repo"
    seed(repo, db_age=db_age, files_age=files_age, drill_age=drill_age)
    result = Cli(capsys, odoo_config(tmp_path, repo))("status")
    assert result.code == code, result.out + result.err
    assert result.out.startswith(f"BACKDRILL {state} - ")
    as_json = Cli(capsys, odoo_config(tmp_path, repo))("status", "--json")
    assert as_json.code == code
    doc = json.loads(as_json.out)
    assert doc["status"] == state
    assert {c["name"] for c in doc["checks"]} == {
        "database odoo",
        "filestore odoo",
        "restore drill",
    }
    assert doc["policy"]["rpo_seconds"] == 86400
    assert doc["policy"]["warning_fraction"] == 0.9


def test_stale_status_names_the_database_and_its_age(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    seed(repo, db_age=30 * H, files_age=H, drill_age=24 * H)
    result = Cli(capsys, odoo_config(tmp_path, repo))("status")
    assert result.code == 2
    first = result.out.splitlines()[0]
    assert first.startswith("BACKDRILL CRITICAL - database odoo: last backup ")
    assert "is 1d06h old (target 1d00h)" in first
    perf = first.split(" | ", 1)[1]  # Nagios performance data: value;warn;crit;min
    assert perf.startswith("'database odoo'=108")
    assert "s;77760;86400;0 " in perf


def test_no_backup_of_a_configured_database_is_critical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    now = datetime.now(UTC)
    write_snapshot(repo, "odoo", now - H)
    write_drill(repo, now - H)
    result = Cli(capsys, odoo_config(tmp_path, repo))("status")
    assert result.code == 2
    assert "database odoo: no committed backup" in result.out


def test_unreadable_repository_is_critical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = Cli(capsys, odoo_config(tmp_path, tmp_path / "nowhere"))("status")
    assert result.code == 2
    assert result.out.startswith("BACKDRILL CRITICAL - repository unreadable: repository directory")


def test_without_ssot_the_config_targets_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    seed(repo, db_age=5 * H, files_age=H, drill_age=24 * H)
    path = odoo_config(tmp_path, repo, ssot=False)
    cli = Cli(capsys, path)
    path.write_text(path.read_text() + "targets: {rpo_hours: 4}\n")
    result = cli("status")
    assert result.code == 2
    assert "database odoo" in result.out.splitlines()[0]


# pure evaluation ---------------------------------------------------------------------

POLICY = Policy(rpo_hours=24, warning_fraction=0.75, drill_max_age_days=95)


def facts(**changes: object) -> RepoFacts:
    m = db_manifest("20261126T030000Z-aaaaaa", "odoo", NOW - 2 * H, finished_at=NOW - H)
    drill = DrillFacts("20261120T050000Z-bbbbbb", "pass", NOW - 6 * 24 * H)
    base = RepoFacts(
        read_at=NOW,
        databases={"odoo": DbFacts("odoo", m, 3)},
        snapshots={"odoo": SnapshotFacts("odoo", "x", NOW - H, 2)},
        last_drill=drill,
        last_passed_drill=drill,
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


@pytest.mark.parametrize(
    ("age_hours", "expected"),
    [
        (0, State.OK),
        (18, State.OK),
        (18.01, State.WARNING),
        (24, State.WARNING),
        (24.01, State.CRITICAL),
    ],
)
def test_age_boundaries_use_the_warning_fraction(age_hours: float, expected: State) -> None:
    report = evaluate(facts(), POLICY, NOW - 2 * H + timedelta(hours=age_hours))
    (db,) = [c for c in report.checks if c.kind == "db"]
    assert db.state == expected


def test_a_newer_failed_drill_warns_even_when_a_passed_one_is_recent() -> None:
    failed = DrillFacts("20261125T050000Z-cccccc", "fail", NOW - H)
    report = evaluate(facts(last_drill=failed), POLICY, NOW)
    assert report.state == State.WARNING
    (drill,) = [c for c in report.checks if c.kind == "drill"]
    assert "the newest drill 20261125T050000Z-cccccc failed" in drill.detail


def test_never_drilled_and_broken_manifest() -> None:
    report = evaluate(
        facts(last_drill=None, last_passed_drill=None, broken=["db/x/y/manifest.json: bad"]),
        POLICY,
        NOW,
    )
    assert report.state == State.CRITICAL
    assert [c.state for c in report.checks if c.kind == "repository"] == [State.WARNING]


def test_empty_repository_is_critical_and_unconfigured_files_are_not_checked() -> None:
    report = evaluate(facts(databases={}, snapshots={}), POLICY, NOW)
    assert [(c.name, c.state) for c in report.checks] == [
        ("database backups", State.CRITICAL),
        ("restore drill", State.OK),
    ]


# end to end: a real backup and a real drill --------------------------------------------


def test_status_is_ok_after_a_real_backup_and_drill_on_each_backend(
    sample_cli: SampleCli, tmp_path: Path, sample: SampleInfo, repo: Repo
) -> None:
    shutil.copy(REPO / "ops/ssot/system_design_map.yaml", tmp_path / "ssot.yaml")
    cli = sample_cli.drilling(repo, database=sample.database, ssot="ssot.yaml")
    before = cli("status")
    assert before.code == 2  # nothing backed up, nothing drilled
    assert cli("backup", "db").code == 0
    drilled = cli("drill", "run")
    assert drilled.code == 0, drilled.err
    metrics = tmp_path / "backdrill.prom"
    result = cli("--metrics-file", str(metrics), "status", "--json")
    assert result.code == 0, result.out
    doc = json.loads(result.out)
    assert doc["status"] == "OK"
    states = {c["name"]: c["state"] for c in doc["checks"]}
    assert states == {
        f"database {sample.database}": "OK",
        "restore drill": "OK",
        "secret postgres -> password_file": "OK",  # a fresh file: within the rotation period
    }
    (drill,) = [c for c in doc["checks"] if c["kind"] == "drill"]
    (report,) = (tmp_path / "reports").glob("*/report.json")
    assert drill["last_id"] == json.loads(report.read_text())["drill_id"]
    samples = {
        s.name: s.value
        for f in text_string_to_metric_families(metrics.read_text())
        for s in f.samples
    }
    rto = json.loads(report.read_text())["rto"]["achieved_seconds"]
    assert samples["backdrill_last_drill_rto_seconds"] == pytest.approx(rto)
    assert samples["backdrill_last_drill_passed"] == 1


@pytest.mark.parametrize(
    ("files", "name"),
    [
        ({"source": "/var/lib/odoo/filestore/odoo"}, "odoo"),
        ({"source": "/var/lib/odoo/filestore/odoo/"}, "odoo"),
        ({"source": "s3://odoo-filestore/prod/odoo"}, "odoo"),
        ({"source": "s3://odoo-filestore"}, "odoo-filestore"),
        ({"source": "/srv/fs", "name": "main"}, "main"),
        ({}, None),
    ],
)
def test_filestore_source_name(files: dict[str, str], name: str | None) -> None:
    config = Config.model_validate({"storage": {"url": "file:///r"}, "files": files})
    assert source_name(config) == name
