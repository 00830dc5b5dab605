"""The enterprise-standards validation of the System Design Map ("Validation &
Enforcement"): required SSOT files exist, the YAML is valid, all 9 domains are defined,
each has ``stack`` and ``owners``, the required runbooks are present, and the checkout
scans for secrets before commits (a pre-commit configuration with a secret-scanning hook).

Runs on a repository checkout (``--root``), not on a backdrill configuration. Every
check is a pure function of the files under the root; each failure is one named line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backdrill.config.loading import one_line
from backdrill.policy.ssot import DEFAULT_PATH, DOMAINS, parse_ssot, read_yaml
from backdrill.runtime.errors import ConfigError

PRE_COMMIT_CONFIG = ".pre-commit-config.yaml"
#: hook ids (or entries) of known secret scanners
SECRET_SCANNERS = ("detect-secrets", "gitleaks", "trufflehog")

REQUIRED_SSOT_FILES = (DEFAULT_PATH,)

REQUIRED_RUNBOOKS = (
    "docs/runbooks/RUNBOOK_Backups_Restore_Drill.md",
    "docs/runbooks/RUNBOOK_Observability_Minimum.md",
    "docs/runbooks/RUNBOOK_Secrets_Management.md",
    "docs/runbooks/incident-response.md",
    "docs/runbooks/service-restart.md",
)


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class StandardsReport:
    root: Path
    findings: list[Finding]

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    @property
    def ok(self) -> bool:
        return not self.failures


def _is_names(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, str) and v.strip() for v in value)
    )


def check_files(root: Path) -> list[Finding]:
    return [
        Finding(
            "required SSOT file",
            (root / rel).is_file(),
            f"{rel}" if (root / rel).is_file() else f"{rel} is missing",
        )
        for rel in REQUIRED_SSOT_FILES
    ]


def check_domains(data: dict[str, Any]) -> list[Finding]:
    domains = data.get("domains")
    if not isinstance(domains, dict):
        return [Finding("domains", False, "`domains` is missing or not a mapping")]
    findings: list[Finding] = []
    missing = [d for d in DOMAINS if d not in domains]
    findings.append(
        Finding(
            "all 9 domains defined",
            not missing,
            f"missing: {', '.join(missing)}" if missing else ", ".join(DOMAINS),
        )
    )
    for name, domain in domains.items():
        if not isinstance(domain, dict):
            findings.append(Finding(f"domain {name}", False, "is not a mapping"))
            continue
        for key in ("stack", "owners"):
            ok = _is_names(domain.get(key))
            detail = (
                f"{len(domain[key])} entries"
                if ok
                else f"has no `{key}` (a non-empty list of names is required)"
            )
            findings.append(Finding(f"domain {name} {key}", ok, detail))
    return findings


def check_structure(data: dict[str, Any], source: str) -> Finding:
    """The rest of the SSOT (schedules, objectives, thresholds) against the model;
    the domains are checked, and named, by :func:`check_domains`."""
    try:
        parse_ssot({**data, "domains": {}}, source)
    except ConfigError as exc:
        return Finding("SSOT structure", False, exc.message)
    return Finding("SSOT structure", True, "schedules, objectives and thresholds valid")


def check_runbooks(root: Path, data: dict[str, Any] | None) -> list[Finding]:
    wanted = list(REQUIRED_RUNBOOKS)
    extra = data.get("required_runbooks") if data else None
    if isinstance(extra, list):
        wanted += [str(r) for r in extra if str(r) not in wanted]
    findings = []
    for rel in wanted:
        path = root / rel
        if not path.is_file():
            findings.append(Finding("required runbook", False, f"{rel} is missing"))
        elif not path.read_text(encoding="utf-8", errors="replace").strip():
            findings.append(Finding("required runbook", False, f"{rel} is empty"))
        else:
            findings.append(Finding("required runbook", True, rel))
    return findings


def _hooks(data: Any) -> list[dict[str, Any]]:
    repos = data.get("repos") if isinstance(data, dict) else None
    if not isinstance(repos, list):
        return []
    return [
        hook
        for repo in repos
        if isinstance(repo, dict) and isinstance(repo.get("hooks"), list)
        for hook in repo["hooks"]
        if isinstance(hook, dict)
    ]


def check_secret_scanning(root: Path) -> Finding:
    """No secrets in git: a pre-commit configuration with a secret-scanning hook."""
    name = "secret scanning (pre-commit)"
    path = root / PRE_COMMIT_CONFIG
    if not path.is_file():
        return Finding(name, False, f"{PRE_COMMIT_CONFIG} is missing")
    try:
        data = read_yaml(path)
    except ConfigError as exc:
        return Finding(name, False, exc.message)
    for hook in _hooks(data):
        text = f"{hook.get('id', '')} {hook.get('entry', '')}".lower()
        scanner = next((s for s in SECRET_SCANNERS if s in text), None)
        if scanner is not None:
            hook_id = one_line(str(hook.get("id")))
            return Finding(name, True, f"{PRE_COMMIT_CONFIG}: hook {hook_id} ({scanner})")
    return Finding(
        name,
        False,
        f"{PRE_COMMIT_CONFIG} has no secret-scanning hook ({', '.join(SECRET_SCANNERS)})",
    )


Extra = Callable[[Path, dict[str, Any]], list[Finding]]


def run_standards_check(root: Path, extra: tuple[Extra, ...] = ()) -> StandardsReport:
    """Every check of the design map's "Validation & Enforcement" list, on ``root``."""
    findings = check_files(root)
    data: dict[str, Any] | None = None
    ssot_path = root / DEFAULT_PATH
    if ssot_path.is_file():
        try:
            loaded = read_yaml(ssot_path)
        except ConfigError as exc:
            findings.append(Finding("YAML valid", False, exc.message))
        else:
            if isinstance(loaded, dict):
                data = loaded
                findings.append(Finding("YAML valid", True, str(DEFAULT_PATH)))
            else:
                findings.append(
                    Finding("YAML valid", False, f"{DEFAULT_PATH}: top level is not a mapping")
                )
    if data is not None:
        findings.extend(check_domains(data))
        findings.append(check_structure(data, str(DEFAULT_PATH)))
        for check in extra:
            findings.extend(check(root, data))
    findings.extend(check_runbooks(root, data))
    findings.append(check_secret_scanning(root))
    return StandardsReport(root, findings)
