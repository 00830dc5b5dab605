"""``status``: pure evaluation of repository facts against the targets (Nagios levels).

Each check is the age of the newest committed database backup (per database), filestore
snapshot (per source) and passed drill, against its target: OK, WARNING beyond the
policy's warning fraction of the target, CRITICAL beyond the target or when there is none.
Beside them, the security checks: each secret file older than the rotation period, and a
TLS minimum lowered below the standard, are WARNING.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from backdrill.config.model import Config
from backdrill.config.secret_age import SecretFileAge, describe, overdue, secret_file_ages
from backdrill.config.security import SecurityConfig
from backdrill.config.sources import attempt_scope, configured_sources
from backdrill.policy.ssot import Policy, policy
from backdrill.repository.attempts import Attempt
from backdrill.runtime.errors import ExternalServiceError
from backdrill.runtime.text import nagios_label, nagios_text
from backdrill.runtime.timeutil import MAX_CLOCK_SKEW, human_duration, isoformat, utcnow
from backdrill.services.facts import RepoFacts, gather, source_name
from backdrill.storage import Storage


class State(enum.IntEnum):
    """Nagios plugin states; the value is the exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2


@dataclass(frozen=True)
class Check:
    name: str
    kind: str  # db | files | drill | attempt | repository | security
    subject: str | None
    state: State
    detail: str
    age_seconds: float | None = None
    target_seconds: float | None = None
    last_id: str | None = None
    last_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "subject": self.subject,
            "state": self.state.name,
            "detail": self.detail,
            "age_seconds": None if self.age_seconds is None else round(self.age_seconds, 3),
            "target_seconds": self.target_seconds,
            "last_id": self.last_id,
            "last_at": isoformat(self.last_at) if self.last_at else None,
        }


@dataclass(frozen=True)
class StatusReport:
    checked_at: datetime
    checks: list[Check] = field(default_factory=list)
    error: str | None = None
    warning_fraction: float = 0.9
    critical_fraction: float = 1.0

    @property
    def state(self) -> State:
        if self.error is not None:
            return State.CRITICAL
        return max((c.state for c in self.checks), default=State.OK)

    @property
    def exit_code(self) -> int:
        return int(self.state)

    def summary(self) -> str:
        """The Nagios first line: state, the worst checks, and performance data. Names
        from the repository are escaped: no ``|`` before the performance data, labels
        quoted (``text.nagios_text``, ``text.nagios_label``)."""
        if self.error is not None:
            return f"BACKDRILL CRITICAL - repository unreadable: {nagios_text(self.error)}"
        bad = [c for c in self.checks if c.state == self.state and c.state != State.OK]
        text = "; ".join(f"{c.name}: {c.detail}" for c in bad) or f"{len(self.checks)} checks ok"
        perf = " ".join(
            f"{nagios_label(c.name)}={c.age_seconds:.0f}s;"
            f"{c.target_seconds * self.warning_fraction:.0f};"
            f"{c.target_seconds * self.critical_fraction:.0f};0"
            for c in self.checks
            if c.age_seconds is not None and c.target_seconds is not None
        )
        return f"BACKDRILL {self.state.name} - {nagios_text(text)}" + (f" | {perf}" if perf else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.state.name,
            "exit_code": self.exit_code,
            "checked_at": isoformat(self.checked_at),
            "error": self.error,
            "checks": [c.to_dict() for c in self.checks],
        }


def age_state(age: float, target: float, policy: Policy) -> State:
    if age > target * policy.critical_fraction:
        return State.CRITICAL
    if age > target * policy.warning_fraction:
        return State.WARNING
    return State.OK


def _aged(
    name: str,
    kind: str,
    subject: str | None,
    latest: tuple[str, datetime] | None,
    target: float,
    policy: Policy,
    now: datetime,
    *,
    what: str,
    missing: str,
) -> Check:
    """Pure: the check of the newest ``(id, time)`` of something against its age target;
    CRITICAL ``missing`` when there is none."""
    if latest is None:
        return Check(name, kind, subject, State.CRITICAL, missing, None, target)
    last_id, last_at = latest
    age = (now - last_at).total_seconds()
    if age < -MAX_CLOCK_SKEW.total_seconds():  # never a negative age reported as OK
        detail = f"{what} {last_id} is dated {human_duration(-age)} in the future"
        return Check(name, kind, subject, State.CRITICAL, detail, age, target, last_id, last_at)
    age = max(age, 0.0)  # within the clock skew allowance
    state = age_state(age, target, policy)
    detail = f"{what} {last_id} is {human_duration(age)} old (target {human_duration(target)})"
    return Check(name, kind, subject, state, detail, age, target, last_id, last_at)


def evaluate(
    facts: RepoFacts,
    policy: Policy,
    now: datetime,
    *,
    databases: list[str] | None = None,
    files_source: str | None = None,
    rpo_hours: Mapping[str, float] | None = None,
) -> StatusReport:
    """Pure: every check of ``facts`` at ``now``. ``databases`` and ``files_source`` are
    what the config says must be backed up (a missing one is CRITICAL); ``rpo_hours``:
    a PostgreSQL source's own RPO target (``sources: NAME: targets:``), by source."""
    rpo = policy.rpo_hours * 3600
    checks: list[Check] = []
    wanted = sorted(set(databases or []) | set(facts.databases))
    if not wanted:
        checks.append(
            Check("database backups", "db", None, State.CRITICAL, "no committed backup", None, rpo)
        )
    for db in wanted:
        found = facts.databases.get(db)
        backup, target = None, rpo
        if found is not None:
            backup = (found.latest.id, found.latest.created_at)
            target = (rpo_hours or {}).get(found.source, policy.rpo_hours) * 3600
        what, missing = "last backup", "no committed backup"
        name = f"database {db}"
        checks.append(
            _aged(name, "db", db, backup, target, policy, now, what=what, missing=missing)
        )
    sources = sorted(set([files_source] if files_source else []) | set(facts.snapshots))
    for source in sources:
        snap = facts.snapshots.get(source)
        latest = None if snap is None else (snap.latest_id, snap.created_at)
        what, missing = "last snapshot", "no snapshot"
        name = f"filestore {source}"
        checks.append(
            _aged(name, "files", source, latest, rpo, policy, now, what=what, missing=missing)
        )
    checks.append(_drill_check(facts, policy, now))
    checks.extend(attempt_checks(facts, policy, now))
    if facts.broken:
        checks.append(
            Check(
                "repository",
                "repository",
                None,
                State.WARNING,
                f"{len(facts.broken)} unreadable manifest(s) or report(s): {facts.broken[0]}",
            )
        )
    return StatusReport(
        checked_at=now,
        checks=checks,
        warning_fraction=policy.warning_fraction,
        critical_fraction=policy.critical_fraction,
    )


_WHAT = {"backup-db": "backup db", "backup-files": "backup files", "drill-run": "drill run"}


def _superseded(facts: RepoFacts, attempt: Attempt) -> bool:
    """A failed backup attempt older than the scope's newest committed backup (a record
    of the later success was lost) no longer says anything."""
    newer: datetime | None = None
    if attempt.command == "backup-db" and attempt.scope in facts.databases:
        newer = facts.databases[attempt.scope].latest.finished_at
    elif attempt.command == "backup-files" and attempt.scope in facts.snapshots:
        newer = facts.snapshots[attempt.scope].created_at
    return newer is not None and newer > attempt.finished_at


def attempt_checks(facts: RepoFacts, policy: Policy, now: datetime) -> list[Check]:
    """Pure: one check per command and scope whose last attempt failed: WARNING, and
    CRITICAL for a backup whose last success is older than the RPO (or never was)."""
    rpo = policy.rpo_hours * 3600
    checks = []
    for attempt in facts.attempts:
        if not attempt.failed or _superseded(facts, attempt):
            continue
        what = _WHAT[attempt.command]
        scope = attempt.scope or "(all)"
        name = f"last {what} {scope}"
        state = State.WARNING
        success = attempt.last_success_at
        if attempt.command != "drill-run" and (
            success is None or (now - success).total_seconds() > rpo
        ):
            state = State.CRITICAL
        verb = "could not start" if attempt.result == "error" else "failed"
        detail = (
            f"{what} {verb} at {isoformat(attempt.finished_at)} "
            f"(exit {attempt.exit_code}): {attempt.error or 'no error recorded'}"
        )
        age = max((now - attempt.finished_at).total_seconds(), 0.0)
        checks.append(
            Check(
                name,
                "attempt",
                attempt.scope,
                state,
                detail,
                age,
                None,
                None,
                attempt.finished_at,
            )
        )
    return checks


def _drill_check(facts: RepoFacts, policy: Policy, now: datetime) -> Check:
    target = policy.drill_max_age_days * 86400
    passed = facts.last_passed_drill
    if passed is None or passed.finished_at is None:
        detail = "no passed restore drill"
        if facts.last_drill is not None:
            detail += f" (last drill {facts.last_drill.drill_id}: {facts.last_drill.result})"
        return Check("restore drill", "drill", None, State.CRITICAL, detail, None, target)
    newest = (passed.drill_id, passed.finished_at)
    what = "last passed drill"
    check = _aged(
        "restore drill",
        "drill",
        passed.database,
        newest,
        target,
        policy,
        now,
        what=what,
        missing="",
    )
    last = facts.last_drill
    if last is not None and last.drill_id != passed.drill_id and last.result != "pass":
        state = max(check.state, State.WARNING)
        return Check(
            check.name,
            check.kind,
            check.subject,
            state,
            f"{check.detail}; the newest drill {last.drill_id} failed",
            check.age_seconds,
            check.target_seconds,
            check.last_id,
            check.last_at,
        )
    return check


def security_checks(security: SecurityConfig, ages: list[SecretFileAge]) -> list[Check]:
    """Pure: a WARNING for a lowered TLS minimum; one check per secret file, WARNING when
    older than the rotation period (or not examinable)."""
    checks: list[Check] = []
    deviation = security.deviation()
    if deviation is not None:
        checks.append(Check("tls minimum", "security", None, State.WARNING, deviation))
    for age in ages:
        state = State.WARNING if overdue(age, security.rotation_days) else State.OK
        detail = describe(age, security.rotation_days)
        checks.append(
            Check(f"secret {age.key}", "security", age.key, state, detail, age.age_seconds)
        )
    return checks


def check_repository(
    storage: Storage, config: Config, now: datetime | None = None
) -> tuple[StatusReport, RepoFacts | None]:
    """Gather the facts and evaluate them; an unreadable repository is CRITICAL."""
    at = now or utcnow()
    security = security_checks(config.security, secret_file_ages(config, at))
    try:
        facts = gather(storage, config)
    except ExternalServiceError as exc:
        return StatusReport(checked_at=at, checks=security, error=str(exc)), None
    report = evaluate_config(facts, config, now or facts.read_at)
    return replace(report, checks=report.checks + security), facts


def evaluate_config(facts: RepoFacts, config: Config, now: datetime) -> StatusReport:
    """The databases every configured source lists must be backed up (a named source's
    as ``<source>/<database>``)."""
    wanted = [
        attempt_scope(db, source.name)
        for source in configured_sources(config)
        if isinstance(source.postgres.databases, list)
        for db in source.postgres.databases
    ]
    return evaluate(
        facts,
        policy(config),
        now,
        databases=wanted or None,
        files_source=source_name(config),
        rpo_hours={
            name: source.targets.rpo_hours
            for name, source in config.sources.items()
            if source.targets is not None
        },
    )
