"""``backdrill standards check`` on this repository and on damaged copies of it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers.cli import run_cli

REPO = Path(__file__).resolve().parent.parent
SSOT = "ops/ssot/system_design_map.yaml"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The parts of the repository the check reads, copied."""
    root = tmp_path / "checkout"
    for rel in ("ops", "docs", "cron"):
        shutil.copytree(REPO / rel, root / rel)
    shutil.copy(REPO / ".pre-commit-config.yaml", root / ".pre-commit-config.yaml")
    return root


@pytest.mark.slow
def test_standards_check_passes_on_the_repository(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "standards", "check", "--root", str(REPO))
    assert result.code == 0, result.out + result.err
    assert "all enterprise-standards checks passed" in result.out
    assert "FAIL" not in result.out


@pytest.mark.slow
def test_standards_check_needs_no_backdrill_config(
    capsys: pytest.CaptureFixture[str], copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(copy)  # default --root is the working directory; no backdrill.yaml
    result = run_cli(capsys, "standards", "check")
    assert result.code == 0, result.err


@pytest.mark.slow
def test_missing_runbook_fails_naming_it(capsys: pytest.CaptureFixture[str], copy: Path) -> None:
    (copy / "docs/runbooks/service-restart.md").unlink()
    result = run_cli(capsys, "standards", "check", "--root", str(copy))
    assert result.code == 1
    assert result.err.strip().splitlines() == [
        "backdrill: standards: required runbook: docs/runbooks/service-restart.md is missing"
    ]


def test_domain_without_owners_fails_naming_the_domain(
    capsys: pytest.CaptureFixture[str], copy: Path
) -> None:
    data = yaml.safe_load((copy / SSOT).read_text())
    del data["domains"]["caching_cdn"]["owners"]
    (copy / SSOT).write_text(yaml.safe_dump(data))
    result = run_cli(capsys, "standards", "check", "--root", str(copy))
    assert result.code == 1
    assert result.err.strip().splitlines() == [
        "backdrill: standards: domain caching_cdn owners: has no `owners` "
        "(a non-empty list of names is required)"
    ]


def test_empty_stack_and_missing_domain_are_each_named(
    capsys: pytest.CaptureFixture[str], copy: Path
) -> None:
    data = yaml.safe_load((copy / SSOT).read_text())
    data["domains"]["load_balancing"]["stack"] = []
    del data["domains"]["security_reliability"]
    (copy / SSOT).write_text(yaml.safe_dump(data))
    result = run_cli(capsys, "standards", "check", "--root", str(copy))
    assert result.code == 1
    assert result.err.strip().splitlines() == [
        "backdrill: standards: all 9 domains defined: missing: security_reliability",
        "backdrill: standards: domain load_balancing stack: has no `stack` "
        "(a non-empty list of names is required)",
    ]


def test_invalid_yaml_fails_naming_file_and_line(
    capsys: pytest.CaptureFixture[str], copy: Path
) -> None:
    text = (copy / SSOT).read_text().replace("  rpo_hours: 24", "  rpo_hours: [24", 1)
    (copy / SSOT).write_text(text)
    result = run_cli(capsys, "standards", "check", "--root", str(copy))
    assert result.code == 1
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"backdrill: standards: YAML valid: {copy / SSOT}: invalid YAML at line")


def test_missing_ssot_file_fails_naming_it(capsys: pytest.CaptureFixture[str], copy: Path) -> None:
    (copy / SSOT).unlink()
    result = run_cli(capsys, "standards", "check", "--root", str(copy))
    assert result.code == 1
    assert (
        "backdrill: standards: required SSOT file: ops/ssot/system_design_map.yaml is missing"
        in result.err
    )


def test_bad_schedule_structure_is_named(capsys: pytest.CaptureFixture[str], copy: Path) -> None:
    data = yaml.safe_load((copy / SSOT).read_text())
    data["backups"]["schedule"][0]["cron"] = "at three"
    (copy / SSOT).write_text(yaml.safe_dump(data))
    result = run_cli(capsys, "standards", "check", "--root", str(copy))
    assert result.code == 1
    assert "SSOT structure" in result.err
    assert "backups -> schedule -> 0: cron 'at three' is not a valid cron expression" in result.err


@pytest.mark.slow
def test_wrapper_script_runs_the_check_on_its_repository() -> None:
    ok = subprocess.run(
        [sys.executable, str(REPO / "scripts/validate_enterprise_standards.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "all enterprise-standards checks passed" in ok.stdout


@pytest.mark.slow
def test_wrapper_script_fails_on_a_broken_copy(copy: Path) -> None:
    (copy / "docs/runbooks/incident-response.md").unlink()
    failed = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts/validate_enterprise_standards.py"),
            "--root",
            str(copy),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert failed.returncode == 1
    assert "docs/runbooks/incident-response.md is missing" in failed.stderr


def test_ci_workflow_runs_the_wrapper() -> None:
    workflow = yaml.safe_load((REPO / ".github/workflows/enterprise-standards.yml").read_text())
    steps = workflow["jobs"]["validate"]["steps"]
    assert any(s.get("run") == "python scripts/validate_enterprise_standards.py" for s in steps)


@pytest.mark.slow
def test_checkout_without_a_pre_commit_config_fails(
    capsys: pytest.CaptureFixture[str], copy: Path
) -> None:
    (copy / ".pre-commit-config.yaml").unlink()
    result = run_cli(capsys, "standards", "check", "--root", str(copy))
    assert result.code == 1
    assert result.err.strip().splitlines() == [
        "backdrill: standards: secret scanning (pre-commit): .pre-commit-config.yaml is missing"
    ]


@pytest.mark.slow
def test_pre_commit_config_without_a_secret_scanner_fails(
    capsys: pytest.CaptureFixture[str], copy: Path
) -> None:
    config = {
        "repos": [
            {"repo": "local", "hooks": [{"id": "ruff", "name": "ruff", "entry": "ruff check"}]}
        ]
    }
    (copy / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    result = run_cli(capsys, "standards", "check", "--root", str(copy))
    assert result.code == 1
    assert "secret scanning (pre-commit): .pre-commit-config.yaml has no secret-scanning hook" in (
        result.err
    )


def test_the_repository_hook_is_local_and_uses_the_committed_baseline() -> None:
    """Offline CI: a local hook (nothing cloned) running detect-secrets on the baseline."""
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    hooks = [h for r in config["repos"] if r["repo"] == "local" for h in r["hooks"]]
    assert any("detect-secrets-hook --baseline .secrets.baseline" in h["entry"] for h in hooks)
    assert all(r["repo"] == "local" for r in config["repos"])
    assert (REPO / ".secrets.baseline").is_file()
    ci = (REPO / ".ci/run").read_text().splitlines()
    assert ci.index("make secret-scan") < ci.index("make test")
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^secret-scan: venv\n\t.*pre-commit run --all-files", makefile, re.M)


@pytest.mark.slow
def test_the_hook_refuses_a_planted_secret(tmp_path: Path) -> None:
    """The scanner the hook runs finds a key outside tests/ (it fails, naming the file)."""
    planted = tmp_path / "settings.py"
    planted.write_text('aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzz9EXAMPLEKEY"\n')
    clean = tmp_path / "clean.py"
    clean.write_text("x = 1\n")
    hook = Path(sys.executable).with_name("detect-secrets-hook")
    baseline = str(REPO / ".secrets.baseline")
    args = [str(hook), "--baseline", baseline]
    ok = subprocess.run(
        [*args, str(clean)], capture_output=True, text=True, timeout=120, check=False
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    found = subprocess.run(
        [*args, str(planted)], capture_output=True, text=True, timeout=120, check=False
    )
    assert found.returncode != 0
    assert "settings.py" in found.stdout
