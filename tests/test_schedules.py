"""cron/backdrill.cron and ops/systemd timers fire exactly when the SSOT says."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from backdrill.policy.schedules import (
    calendar_times,
    check_schedules,
    cron_times,
    job_of,
    parse_cron_file,
    parse_oncalendar,
    systemd_jobs,
)
from backdrill.policy.ssot import load_ssot

REPO = Path(__file__).resolve().parent.parent
SSOT = "ops/ssot/system_design_map.yaml"
JOBS = {"backup db", "backup files", "prune", "drill run"}


def _checkout(tmp_path: Path) -> Path:
    """A copy of the checkout's ops/ and cron/, to edit."""
    root = tmp_path / "checkout"
    for rel in ("ops", "cron"):
        shutil.copytree(REPO / rel, root / rel)
    return root


def _findings(root: Path) -> list[tuple[str, bool, str]]:
    data = yaml.safe_load((root / SSOT).read_text())
    return [(f.check, f.ok, f.detail) for f in check_schedules(root, data)]


def test_ssot_schedules_are_the_design_maps() -> None:
    ssot = load_ssot(REPO / SSOT)
    assert ssot.schedules() == {
        "backup db": "0 3 * * *",
        "backup files": "0 4 * * *",
        "prune": "0 6 * * *",
        "drill run": "0 5 1 1,4,7,10 *",
    }
    assert ssot.recovery_objectives.rpo_hours == 24
    assert ssot.recovery_objectives.rto_hours == 4
    assert ssot.retention_days("backup db") == ssot.retention_days("backup files") == 30


def test_cron_file_and_systemd_timers_agree_with_the_ssot() -> None:
    findings = _findings(REPO)
    assert [f for f in findings if not f[1]] == []
    checked = {name for name, _ok, _d in findings}
    assert {f"cron schedule {j}" for j in JOBS} <= checked
    assert {f"systemd timer {j}" for j in JOBS} <= checked
    assert "cron timezone" in checked


def test_cron_file_parses_with_croniter_and_runs_each_job_once() -> None:
    cron = parse_cron_file((REPO / "cron/backdrill.cron").read_text())
    assert cron.env["CRON_TZ"] == "UTC"
    assert set(cron.jobs) == JOBS
    start, end = datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC)
    drills = list(cron_times(cron.jobs["drill run"], start, end))
    assert [(d.month, d.day, d.hour) for d in drills] == [
        (1, 1, 5),
        (4, 1, 5),
        (7, 1, 5),
        (10, 1, 5),
    ]
    prune = next(iter(cron_times(cron.jobs["prune"], start, end)))
    for job in ("backup db", "backup files"):
        assert next(iter(cron_times(cron.jobs[job], start, end))) < prune


def test_systemd_timers_fire_in_utc_at_the_same_instants_as_cron() -> None:
    timers = systemd_jobs(REPO / "ops/systemd")
    cron = parse_cron_file((REPO / "cron/backdrill.cron").read_text())
    assert set(timers) == JOBS
    start, end = datetime(2027, 1, 1, tzinfo=UTC), datetime(2029, 1, 1, tzinfo=UTC)
    for job, (spec, _timer) in timers.items():
        cal = parse_oncalendar(spec)
        assert cal.utc, spec
        assert list(calendar_times(cal, start, end)) == list(cron_times(cron.jobs[job], start, end))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("old", "new", "broken"),
    [
        ('cron: "0 3 * * *"', 'cron: "30 2 * * *"', "backup db"),
        ('cron: "0 4 * * *"', 'cron: "0 5 * * *"', "backup files"),
        ('cron: "0 5 1 1,4,7,10 *"', 'cron: "0 5 1 2,5,8,11 *"', "drill run"),
    ],
)
def test_changing_the_ssot_time_makes_the_check_fail(
    tmp_path: Path, old: str, new: str, broken: str
) -> None:
    root = _checkout(tmp_path)
    text = (root / SSOT).read_text()
    assert old in text
    (root / SSOT).write_text(text.replace(old, new, 1))
    failed = {name: detail for name, ok, detail in _findings(root) if not ok}
    assert set(failed) == {f"cron schedule {broken}", f"systemd timer {broken}"}
    assert new.removeprefix("cron: ").strip('"') in failed[f"cron schedule {broken}"]


@pytest.mark.slow
def test_a_timer_without_utc_is_rejected(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    timer = root / "ops/systemd/backdrill-backup-db.timer"
    timer.write_text(timer.read_text().replace("03:00:00 UTC", "03:00:00"))
    failed = [(n, d) for n, ok, d in _findings(root) if not ok]
    assert failed == [
        (
            "systemd timer backup db",
            "backdrill-backup-db.timer: OnCalendar=*-*-* 03:00:00 lacks UTC",
        )
    ]


@pytest.mark.slow
def test_cron_without_cron_tz_is_rejected(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    cron = root / "cron/backdrill.cron"
    cron.write_text(cron.read_text().replace("CRON_TZ=UTC\n", ""))
    failed = [n for n, ok, _d in _findings(root) if not ok]
    assert failed == ["cron timezone"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("*-*-* 03:00:00 UTC", [(1, 1, 3, 0), (1, 2, 3, 0), (1, 3, 3, 0)]),
        ("daily", [(1, 1, 0, 0), (1, 2, 0, 0), (1, 3, 0, 0)]),
        ("Mon..Fri *-*-* 06:30 UTC", [(1, 1, 6, 30), (1, 4, 6, 30), (1, 5, 6, 30)]),
        ("*-01,04-01 05:00:00 UTC", [(1, 1, 5, 0), (4, 1, 5, 0), (1, 1, 5, 0)]),
    ],
)
def test_oncalendar_parser(spec: str, expected: list[tuple[int, int, int, int]]) -> None:
    start, end = datetime(2027, 1, 1, tzinfo=UTC), datetime(2029, 1, 1, tzinfo=UTC)
    got = [
        (t.month, t.day, t.hour, t.minute)
        for t in calendar_times(parse_oncalendar(spec), start, end)
    ]
    assert got[:3] == expected


@pytest.mark.parametrize(
    ("command", "job"),
    [
        ("backdrill backup db", "backup db"),
        ("/usr/local/bin/backdrill --config /etc/b.yaml --debug backup files", "backup files"),
        ("backdrill --log-format=json prune", "prune"),
        ("backdrill --metrics-file /x.prom drill run --sandbox local", "drill run"),
        ("/usr/bin/true", None),
    ],
)
def test_job_of_command(command: str, job: str | None) -> None:
    assert job_of(command) == job
