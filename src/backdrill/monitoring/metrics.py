"""Prometheus metrics of a repository's facts and status (``/metrics`` and
``--metrics-file``): built fresh into a private registry each time, from plain data."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest, write_to_textfile

from backdrill import __version__
from backdrill.policy.ssot import Policy
from backdrill.repository.attempts import Attempt
from backdrill.services.facts import RepoFacts
from backdrill.services.status import StatusReport

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def build_registry(
    facts: RepoFacts | None,
    report: StatusReport,
    policy: Policy,
    *,
    last_run_exit_code: int | None = None,
    last_run_command: str = "",
) -> CollectorRegistry:
    """Pure: a registry holding every backdrill series for ``facts`` and ``report``."""
    reg = CollectorRegistry(auto_describe=True)

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=reg)

    gauge("backdrill_info", "backdrill version", ("version",)).labels(__version__).set(1)
    gauge("backdrill_repository_up", "1 when the repository could be read").set(
        0 if facts is None else 1
    )
    gauge("backdrill_status", "0 OK, 1 WARNING, 2 CRITICAL (as `backdrill status`)").set(
        int(report.state)
    )
    gauge("backdrill_rpo_target_seconds", "RPO target").set(policy.rpo_hours * 3600)
    gauge("backdrill_rto_target_seconds", "RTO target").set(policy.rto_hours * 3600)
    state = gauge("backdrill_check_state", "state of each status check", ("check",))
    age = gauge("backdrill_check_age_seconds", "age of each status check's subject", ("check",))
    for check in report.checks:
        state.labels(check.name).set(int(check.state))
        if check.age_seconds is not None:
            age.labels(check.name).set(check.age_seconds)
    if last_run_exit_code is not None:
        gauge(
            "backdrill_last_run_exit_code", "exit code of the command that wrote this", ("command",)
        ).labels(last_run_command).set(last_run_exit_code)
    if facts is None:
        return reg
    gauge("backdrill_facts_timestamp_seconds", "when the repository was read").set(
        _ts(facts.read_at)
    )
    #: source: the PostgreSQL source of a database (config ``sources:``); "" for files
    kd = ("kind", "database", "source")
    success = gauge("backdrill_last_success_timestamp_seconds", "when the last backup finished", kd)
    point = gauge(
        "backdrill_last_recovery_point_timestamp_seconds",
        "created_at of the last backup: the recovery point",
        kd,
    )
    duration = gauge("backdrill_last_duration_seconds", "duration of the last backup", kd)
    size = gauge("backdrill_last_size_bytes", "stored size of the last backup", kd)
    count = gauge("backdrill_backups", "committed backups in the repository", kd)
    for _key, found in sorted(facts.databases.items()):
        m, db = found.latest, ("db", found.database, found.source)
        success.labels(*db).set(_ts(m.finished_at))
        point.labels(*db).set(_ts(m.created_at))
        duration.labels(*db).set((m.finished_at - m.started_at).total_seconds())
        size.labels(*db).set(m.stored_size)
        count.labels(*db).set(found.count)
    for source, snap in sorted(facts.snapshots.items()):
        success.labels("files", source, "").set(_ts(snap.created_at))
        point.labels("files", source, "").set(_ts(snap.created_at))
        count.labels("files", source, "").set(snap.count)
    for source, attempt in _last_files_success(facts).items():
        if attempt.duration_seconds is not None:
            duration.labels("files", source, "").set(attempt.duration_seconds)
        if attempt.size_bytes is not None:
            size.labels("files", source, "").set(attempt.size_bytes)
    _attempt_series(gauge, facts)
    gauge("backdrill_drills", "drill reports in the repository").set(facts.drill_count)
    gauge("backdrill_unreadable_entries", "unreadable manifests and reports").set(len(facts.broken))
    drill = facts.last_drill
    if drill is not None:
        gauge(
            "backdrill_last_drill_result",
            "1 for the last drill, labelled with its database, result and source",
            ("database", "result", "source"),
        ).labels(drill.database or "", drill.result, drill.source or "default").set(1)
        gauge("backdrill_last_drill_passed", "1 when the last drill passed").set(
            1 if drill.result == "pass" else 0
        )
        if drill.finished_at is not None:
            gauge("backdrill_last_drill_timestamp_seconds", "when the last drill finished").set(
                _ts(drill.finished_at)
            )
        if drill.rpo_seconds is not None:
            gauge("backdrill_last_drill_rpo_seconds", "RPO achieved by the last drill").set(
                drill.rpo_seconds
            )
        if drill.rto_seconds is not None:
            gauge("backdrill_last_drill_rto_seconds", "RTO achieved by the last drill").set(
                drill.rto_seconds
            )
    passed = facts.last_passed_drill
    if passed is not None and passed.finished_at is not None:
        gauge(
            "backdrill_last_passed_drill_timestamp_seconds", "when the last passed drill finished"
        ).set(_ts(passed.finished_at))
    return reg


def _last_files_success(facts: RepoFacts) -> dict[str, Attempt]:
    """The attempt record of each source whose last ``backup files`` succeeded."""
    return {
        a.scope: a
        for a in facts.attempts
        if a.command == "backup-files" and not a.failed and a.scope in facts.snapshots
    }


def _attempt_series(gauge: Callable[[str, str, tuple[str, ...]], Gauge], facts: RepoFacts) -> None:
    """Per command and scope, from the repository's attempt records: every writer of a
    metrics file rebuilds them from the same records, so a failure written by one cron
    line is not overwritten by the next command's success."""
    labels = ("command", "database", "source")
    code = gauge("backdrill_attempt_exit_code", "exit code of the last attempt", labels)
    failed = gauge("backdrill_attempt_failed", "1 when the last attempt failed", labels)
    at = gauge("backdrill_attempt_timestamp_seconds", "when the last attempt ended", labels)
    success = gauge(
        "backdrill_attempt_last_success_timestamp_seconds", "when an attempt last succeeded", labels
    )
    failure = gauge(
        "backdrill_attempt_last_failure_timestamp_seconds", "when an attempt last failed", labels
    )
    duration = gauge("backdrill_attempt_duration_seconds", "duration of the last attempt", labels)
    size = gauge("backdrill_attempt_size_bytes", "bytes of the last attempt", labels)
    for a in facts.attempts:
        key = (a.command, *((a.scope, "") if a.scope_kind == "database" else ("", a.scope)))
        code.labels(*key).set(a.exit_code)
        failed.labels(*key).set(1 if a.failed else 0)
        at.labels(*key).set(_ts(a.finished_at))
        if a.last_success_at is not None:
            success.labels(*key).set(_ts(a.last_success_at))
        if a.last_failure_at is not None:
            failure.labels(*key).set(_ts(a.last_failure_at))
        if a.duration_seconds is not None:
            duration.labels(*key).set(a.duration_seconds)
        if a.size_bytes is not None:
            size.labels(*key).set(a.size_bytes)


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def write_textfile(path: Path, registry: CollectorRegistry) -> None:
    """For node_exporter's textfile collector: written to a temporary file in the same
    directory and renamed, so the collector never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(os.fspath(path), registry)
    # the units run with UMask=0077; node_exporter (another user) must read the file,
    # which holds no secret
    os.chmod(path, 0o644)
