"""Runbooks that work at 3 AM: no placeholder left, durations generated from a real
drill's history (scripts/runbook_durations.py), and the topics an operator needs then:
role passwords, filestore ownership, the age identity, every exit code, the stop hint."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from backdrill.runtime.timeutil import human_duration
from backdrill.sample.odoo import SampleInfo
from helpers.cli import SampleCli

REPO = Path(__file__).resolve().parent.parent
RUNBOOKS = REPO / "docs" / "runbooks"
INCIDENT = RUNBOOKS / "incident-response.md"
SCRIPT = REPO / "scripts" / "runbook_durations.py"


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("runbook_durations", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", sorted(RUNBOOKS.glob("*.md")), ids=lambda p: p.name)
def test_no_runbook_holds_a_placeholder(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "_from the last drill_" not in text
    assert not re.search(r"\bTODO\b|\bTBD\b", text)


def test_the_incident_runbook_table_is_filled_from_a_drill() -> None:
    text = INCIDENT.read_text(encoding="utf-8")
    block = text.split("<!-- durations:begin -->")[1].split("<!-- durations:end -->")[0]
    assert re.search(r"Last drill: `\d{8}T\d{6}Z-[0-9a-f]{6}`", block)
    for phase in ("provision target", "download", "restore", "verify", "**total (RTO)**"):
        assert re.search(
            rf"\| {re.escape(phase)} \| \d+(\.\d+)?s|\| {re.escape(phase)} \| \d", block
        )


def test_the_incident_runbook_says_what_3am_needs() -> None:
    text = INCIDENT.read_text(encoding="utf-8")
    assert "ALTER ROLE" in text and "no password" in text  # restore db creates roles
    assert "chown -R odoo:odoo" in text  # restore files as root restores owners
    assert "BACKDRILL_AGE_IDENTITY" in text and "identity_file" in text
    rows = re.findall(r"^\| (\d+(?: / \d+)?) \|", text.split("## If the restore fails")[1], re.M)
    assert rows == ["0", "1", "2", "3", "4", "5", "6", "130 / 143"]


def test_the_drill_runbook_stops_a_kept_sandbox_as_its_user() -> None:
    text = (RUNBOOKS / "RUNBOOK_Backups_Restore_Drill.md").read_text(encoding="utf-8")
    assert "runuser -u postgres -- " in text and "pg_ctl stop -D" in text
    assert "cannot be run as root" in text


def test_the_generator_writes_a_real_drills_phases(
    sample_cli: SampleCli, tmp_path: Path, sample: SampleInfo
) -> None:
    cli = sample_cli.drilling(database=sample.database)
    assert cli("backup", "db").code == 0
    assert cli("drill", "run").code == 0
    history = cli("drill", "history", "--json").out
    (report,) = json.loads(history)
    runbook = tmp_path / "incident.md"
    runbook.write_text("before\n<!-- durations:begin -->\nold\n<!-- durations:end -->\nafter\n")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(runbook)],
        input=history,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    text = runbook.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "old" not in text
    assert report["drill_id"] in text
    phases = report["rto"]["phases"]
    assert f"| restore | {human_duration(phases['restore'])} |" in text
    assert f"| download | {human_duration(phases['download'])} |" in text
    assert f"| **total (RTO)** | {human_duration(report['rto']['achieved_seconds'])} |" in text


def test_the_generator_refuses_an_empty_history_and_leaves_the_runbook(tmp_path: Path) -> None:
    runbook = tmp_path / "incident.md"
    runbook.write_text("<!-- durations:begin -->\nold\n<!-- durations:end -->\n")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(runbook)],
        input="[]",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1 and "no drill" in proc.stderr
    assert "old" in runbook.read_text()


def test_hostile_history_values_are_neither_markdown_nor_html() -> None:
    module = script()
    report = {
        "drill_id": "x | <script>alert(1)</script>\n# heading",
        "started_at": "2026-01-01T00:00:00Z",
        "result": "pass",
        "backup": {"id": "`rm -rf /`", "database": "odoo", "raw_size_bytes": "huge"},
        "rto": {"achieved_seconds": 10.0, "target_seconds": 14400, "phases": {"restore": -5}},
    }
    assert module.last_drill([report, "junk", {"rto": {"phases": []}}]) is report
    table = module.durations_table(report)
    assert "<script>" not in table and "`rm" not in table and "\n# " not in table
    assert "| restore | not measured |" in table
    with pytest.raises(ValueError, match="not a JSON array"):
        module.last_drill({"drills": []})
