"""``drill run`` and ``drill history`` against a real PostgreSQL and real storage."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import psutil
import pytest

from backdrill.sample.odoo import SampleInfo
from helpers.backed import Backed, BackUp
from helpers.browser import chromium_or_skip, headless
from helpers.cli import Repo, Result, run_cli, start_cli_process
from helpers.processes import names, processes_naming
from helpers.repo import delete_object, list_keys, read_object, write_object

REPORT_KEYS = {
    "schema_version",
    "drill_id",
    "run_id",
    "host",
    "operator",
    "backdrill_version",
    "started_at",
    "finished_at",
    "backup",
    "files_snapshot",
    "sandbox",
    "rpo",
    "rto",
    "checks",
    "result",
    "cleanup",
    "previous_report_sha256",
}


def drill(capsys: pytest.CaptureFixture[str], backed: Backed, *args: str) -> Result:
    return run_cli(capsys, "--config", str(backed.config), "drill", "run", *args)


def sandbox_dirs(backed: Backed) -> set[Path]:
    return {p for p in backed.work.iterdir() if p.is_dir()}


def nothing_of_the_sandbox_survives(backed: Backed, report: dict[str, object]) -> None:
    """No directory, no server process and no listening port of the drill's sandbox (the
    port may since be another cluster's: tests run on parallel workers)."""
    assert list(backed.work.iterdir()) == []
    assert processes_naming({backed.work}) == []
    sandbox = report["sandbox"]
    if isinstance(sandbox, dict):
        port = int(str(sandbox["address"]).split(":")[1].split()[0])
        listening = [
            c
            for c in psutil.net_connections("tcp")
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
        ]
        assert [c for c in listening if c.pid is None or names(c.pid, backed.work)] == []


def test_drill_passes_and_report_holds_every_field(
    back_up: BackUp, capsys: pytest.CaptureFixture[str], sample: SampleInfo, repo: Repo
) -> None:
    backed = back_up(repo, sample.database)
    result = drill(capsys, backed)
    assert result.code == 0, result.out + result.err
    assert "PASS" in result.out
    report = backed.only_report()
    assert set(report) >= REPORT_KEYS
    assert report["result"] == "pass" and report["cleanup"] == "done"
    assert report["previous_report_sha256"] is None
    backup = report["backup"]
    assert isinstance(backup, dict)
    assert backup["id"] == backed.manifest["id"]
    assert backup["sha256"] == backed.manifest["sha256"]
    assert backup["size_bytes"] == backed.manifest["stored_size"]
    assert backup["created_at"] == backed.manifest["created_at"]
    sandbox = report["sandbox"]
    assert isinstance(sandbox, dict)
    assert sandbox["kind"] == "local" and sandbox["server_version"].startswith("15")
    assert "127.0.0.1:" in sandbox["address"]
    rpo, rto = report["rpo"], report["rto"]
    assert isinstance(rpo, dict) and isinstance(rto, dict)
    assert rpo["target_seconds"] == 86400 and rpo["met"] is True
    assert 0 <= rpo["achieved_seconds"] < 600
    assert rto["target_seconds"] == 14400 and rto["met"] is True
    assert set(rto["phases"]) == {"provision", "download", "restore", "verify"}
    # provision and download run side by side; restore and verify follow them
    phases = rto["phases"]
    serial = max(phases["provision"], phases["download"]) + phases["restore"] + phases["verify"]
    assert serial * 0.99 <= rto["achieved_seconds"] < sum(phases.values()) + 60
    statuses = {c["name"]: c["status"] for c in report["checks"]}  # type: ignore[union-attr]
    for name in (
        "checksum",
        "pg_restore",
        "row_counts",
        "odoo_modules",
        "odoo_users",
        "odoo_database_uuid",
        "odoo_neutralized",
        "rpo",
        "rto",
    ):
        assert statuses[name] == "pass", report["checks"]
    # the same evidence is in the repository
    stored = json.loads(read_object(repo, f"evidence/{report['drill_id']}/report.json"))
    assert stored == report
    assert {
        f"evidence/{report['drill_id']}/{n}" for n in ("report.json", "report.md", "report.html")
    } <= set(list_keys(repo))
    nothing_of_the_sandbox_survives(backed, report)


def _flip_middle_byte(repo: Repo, key: str) -> None:
    data = bytearray(read_object(repo, key))
    data[len(data) // 2] ^= 0x01
    write_object(repo, key, bytes(data))


@pytest.mark.parametrize("damage", ["flip", "truncate", "missing"])
def test_drill_fails_with_exit_4_on_a_damaged_dump(
    back_up: BackUp, capsys: pytest.CaptureFixture[str], sample: SampleInfo, repo: Repo, damage: str
) -> None:
    backed = back_up(repo, sample.database)
    key = backed.key("dump.pgdump.zst")
    if damage == "flip":
        _flip_middle_byte(repo, key)
    elif damage == "truncate":
        write_object(repo, key, read_object(repo, key)[:-1000])
    else:
        delete_object(repo, key)
    result = drill(capsys, backed)
    assert result.code == 4, result.out + result.err
    assert "Traceback" not in result.err
    assert "FAILED checksum" in result.out
    report = backed.only_report()
    assert report["result"] == "fail"
    failed = [c for c in report["checks"] if c["status"] == "fail"]  # type: ignore[union-attr]
    assert failed[0]["name"] == "checksum"
    expected = {"flip": "does not match", "truncate": "truncated", "missing": "does not exist"}
    assert expected[damage] in failed[0]["detail"] or "checksum mismatch" in failed[0]["detail"]
    nothing_of_the_sandbox_survives(backed, report)


def test_drill_fails_with_exit_1_when_a_row_count_differs(
    back_up: BackUp, capsys: pytest.CaptureFixture[str], sample: SampleInfo, local_repo: Repo
) -> None:
    backed = back_up(local_repo, sample.database)
    doc = json.loads(read_object(local_repo, backed.key("manifest.json")))
    for table in doc["tables"]:
        if table["table"] == "res_partner":
            table["rows"] += 1
    write_object(local_repo, backed.key("manifest.json"), json.dumps(doc).encode())
    result = drill(capsys, backed)
    assert result.code == 1
    checks = {c["name"]: c for c in backed.only_report()["checks"]}  # type: ignore[union-attr]
    assert checks["row_counts"]["status"] == "fail"
    expected = doc_rows(doc, "res_partner")
    assert (
        f"public.res_partner: expected {expected}, got {expected - 1}"
        in checks["row_counts"]["detail"]
    )


def doc_rows(doc: dict[str, list[dict[str, object]]], table: str) -> int:
    return next(int(str(t["rows"])) for t in doc["tables"] if t["table"] == table)


@pytest.mark.parametrize("target", ["rpo", "rto"])
def test_drill_fails_with_exit_1_when_a_target_is_missed(
    back_up: BackUp,
    capsys: pytest.CaptureFixture[str],
    sample: SampleInfo,
    local_repo: Repo,
    target: str,
) -> None:
    low = {"rpo_hours": 0.00001} if target == "rpo" else {"rto_hours": 0.00001}
    backed = back_up(local_repo, sample.database, targets=low)
    result = drill(capsys, backed)
    assert result.code == 1
    report = backed.only_report()
    assert report[target]["met"] is False  # type: ignore[index]
    other = "rto" if target == "rpo" else "rpo"
    assert report[other]["met"] is True  # type: ignore[index]
    assert f"FAILED {target}: achieved" in result.out


def test_history_verify_names_the_broken_link_after_an_edit(
    back_up: BackUp, capsys: pytest.CaptureFixture[str], sample: SampleInfo, repo: Repo
) -> None:
    backed = back_up(repo, sample.database)
    assert drill(capsys, backed).code == 0
    assert drill(capsys, backed).code == 0
    assert drill(capsys, backed).code == 0
    ok = run_cli(capsys, "--config", str(backed.config), "drill", "history", "--verify")
    assert ok.code == 0 and "3 report(s) intact" in ok.out
    keys = sorted(k for k in list_keys(repo, "evidence/") if k.endswith("report.json"))
    first_id, second_id = keys[0].split("/")[1], keys[1].split("/")[1]
    raw = read_object(repo, keys[0])
    edited = raw.replace(b'"result": "pass"', b'"result": "pasS"', 1)
    assert edited != raw
    write_object(repo, keys[0], edited)
    bad = run_cli(capsys, "--config", str(backed.config), "drill", "history", "--verify")
    assert bad.code == 4
    assert f"broken link at drill {second_id}: previous_report_sha256" in bad.err
    assert "Traceback" not in bad.err
    # a one-byte edit that keeps the JSON valid and parseable breaks the link as well
    write_object(repo, keys[0], raw.replace(b'"host": "', b'"host": "X', 1))
    again = run_cli(capsys, "--config", str(backed.config), "drill", "history", "--verify")
    assert again.code == 4
    assert f"broken link at drill {first_id}: its content does not match" in again.err
    assert f"broken link at drill {second_id}" in again.err


def test_drill_interrupted_by_sigterm_leaves_no_sandbox(
    back_up: BackUp, sample: SampleInfo, local_repo: Repo
) -> None:
    backed = back_up(local_repo, sample.database)
    before = sandbox_dirs(backed)
    proc = start_cli_process(backed.config, "drill", "run")
    deadline = time.monotonic() + 60
    new: set[Path] = set()
    while time.monotonic() < deadline:
        new = {p for p in sandbox_dirs(backed) - before if (p / "data" / "postmaster.pid").exists()}
        if new:
            break
        time.sleep(0.01)
    assert new, "the sandbox never started"
    assert processes_naming(new), "no postgres process found for the sandbox"
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "interrupted by SIGTERM" in err
    assert sandbox_dirs(backed) - before == set()
    assert processes_naming(new) == []


def test_html_report_screenshot_shows_the_verdict(
    back_up: BackUp,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sample: SampleInfo,
    local_repo: Repo,
) -> None:
    from PIL import Image

    chromium = chromium_or_skip()
    backed = back_up(local_repo, sample.database)
    assert drill(capsys, backed).code == 0
    (html,) = backed.reports.glob("*/report.html")
    text = html.read_text()
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in text and "<link" not in text
    artifacts = Path(__file__).resolve().parent.parent / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "drill-report.png"
    shot.unlink(missing_ok=True)
    headless(
        chromium,
        tmp_path / "chromium",
        "--window-size=1100,900",
        f"--screenshot={shot}",
        html.as_uri(),
    )
    image = Image.open(shot).convert("RGB")
    # the verdict banner at the top is the pass green (#1a7f37)
    top = image.crop((0, 0, image.width, 160))
    colours = {colour: count for count, colour in top.getcolors(1 << 22) or []}
    green = colours.get((0x1A, 0x7F, 0x37), 0)
    assert green > 0.3 * top.width * top.height * 0.5, green
    dom = headless(chromium, tmp_path / "chromium2", "--dump-dom", html.as_uri())
    assert "<h1>PASS</h1>" in dom
