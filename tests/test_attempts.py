"""Failures in plain sight: every ``backup db``, ``backup files`` and ``drill run``
records its last attempt per scope in the repository (``status/``); ``status`` and the
metrics show a failed one at once, and a drill that cannot start is an ``error``, never
a failed drill in the evidence chain."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backdrill.pg.connection import ConnParams
from backdrill.policy.ssot import Policy
from backdrill.repository.attempts import Attempt, attempt_key, parse_attempt, record_all
from backdrill.sample.odoo import SampleInfo
from backdrill.services.facts import DbFacts, DrillFacts, RepoFacts
from backdrill.services.status import State, evaluate
from backdrill.storage.local import LocalStorage
from helpers.cli import Cli, Repo, SampleCli, run_cli, write_config
from helpers.repo import list_keys, read_object, write_object
from helpers.seed import db_manifest

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(path.read_text())
        for s in f.samples
    }


def attempt_labels(
    command: str, database: str = "", source: str = ""
) -> tuple[tuple[str, str], ...]:
    return (("command", command), ("database", database), ("source", source))


def test_a_failed_backup_db_survives_a_later_backup_files_in_the_metrics_file(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    sample: SampleInfo,
    repo: Repo,
) -> None:
    """The 03:00 ``backup db`` that exited 5 is not overwritten by the 04:00 ``backup
    files`` that exited 0: both write one metrics file, rebuilt from the repository."""
    config = write_config(tmp_path / "c.yaml", pg, repo, files={"source": str(sample.filestore)})
    prom = tmp_path / "textfile" / "backdrill.prom"
    base = ("--config", str(config), "--metrics-file", str(prom))
    failed = run_cli(capsys, *base, "backup", "db", "--database", "no_such_db")
    assert failed.code != 0
    ok = run_cli(capsys, *base, "backup", "files")
    assert ok.code == 0, ok.err
    found = samples(prom)
    db = attempt_labels("backup-db", database="no_such_db")
    assert found[("backdrill_attempt_exit_code", db)] == failed.code
    assert found[("backdrill_attempt_failed", db)] == 1
    assert ("backdrill_attempt_last_failure_timestamp_seconds", db) in found
    assert ("backdrill_attempt_last_success_timestamp_seconds", db) not in found
    files = attempt_labels("backup-files", source=sample.filestore.name)
    assert found[("backdrill_attempt_exit_code", files)] == 0
    assert found[("backdrill_attempt_size_bytes", files)] > 0
    kind = (("database", sample.filestore.name), ("kind", "files"), ("source", ""))
    assert ("backdrill_last_duration_seconds", kind) in found
    assert found[("backdrill_last_size_bytes", kind)] > 0
    # the record itself: one small JSON document per command and scope
    record = parse_attempt(read_object(repo, attempt_key("backup-db", "no_such_db")))
    assert record.result == "failed" and record.exit_code == failed.code
    assert record.error is not None and "no_such_db" in record.error


def test_status_names_a_failed_last_attempt(sample_cli: SampleCli) -> None:
    cli = sample_cli()
    assert cli("backup", "db").code == 0
    before = cli("status", "--json")
    assert not [c for c in json.loads(before.out)["checks"] if c["kind"] == "attempt"]
    failed = cli("backup", "db", "-d", "gone_db")
    assert failed.code != 0
    after = cli("status", "--json")
    assert after.code != 0
    (check,) = [c for c in json.loads(after.out)["checks"] if c["kind"] == "attempt"]
    assert check["name"] == "last backup db gone_db"
    assert check["state"] == "CRITICAL"  # never succeeded: older than the RPO
    assert "gone_db" in check["detail"] and f"exit {failed.code}" in check["detail"]
    line = cli("status").out
    assert "last backup db gone_db" in line


def _facts(*attempts: Attempt) -> RepoFacts:
    manifest = db_manifest(
        "20261127T110000Z-aaaaaa",
        "odoo",
        NOW - timedelta(hours=1),
        finished_at=NOW - timedelta(minutes=59),
    )
    drill = DrillFacts("20261127T100000Z-bbbbbb", "pass", NOW - timedelta(hours=2), "odoo")
    return RepoFacts(
        read_at=NOW,
        databases={"odoo": DbFacts("odoo", manifest, 1)},
        last_drill=drill,
        last_passed_drill=drill,
        attempts=list(attempts),
    )


def _attempt(command: str, result: str, success_age_hours: float | None) -> Attempt:
    return Attempt(
        command=command,
        scope="odoo",
        result=result,
        exit_code=0 if result == "ok" else 5,
        finished_at=NOW - timedelta(minutes=5),
        error=None if result == "ok" else "cannot connect to PostgreSQL",
        last_success_at=(
            None if success_age_hours is None else NOW - timedelta(hours=success_age_hours)
        ),
    )


@pytest.mark.slow
def test_status_levels_of_a_failed_attempt() -> None:
    """Pure: WARNING for a failure whose last success is within the RPO, CRITICAL
    beyond it; a successful last attempt adds no check."""
    policy = Policy()
    assert evaluate(_facts(), policy, NOW).state == State.OK
    assert evaluate(_facts(_attempt("backup-db", "ok", 1)), policy, NOW).state == State.OK
    recent = evaluate(_facts(_attempt("backup-db", "failed", 1)), policy, NOW)
    assert recent.state == State.WARNING
    assert "last backup db odoo" in recent.summary()
    assert "cannot connect to PostgreSQL" in recent.summary()
    old = evaluate(_facts(_attempt("backup-db", "failed", 30)), policy, NOW)
    assert old.state == State.CRITICAL
    drill = evaluate(_facts(_attempt("drill-run", "error", None)), policy, NOW)
    assert drill.state == State.WARNING
    assert "drill run could not start" in drill.summary()


def test_a_drill_whose_sandbox_cannot_start_is_an_error_not_a_failed_drill(
    sample_cli: SampleCli,
    tmp_path: Path,
    local_repo: Repo,
    work_dir: Path,
) -> None:
    """``--sandbox docker`` with no Docker engine here: exit 5, no evidence report (no
    ``FAILED rto`` in the chain), an attempt with result ``error`` that status names."""
    from backdrill.sandbox.docker import docker_available

    if docker_available()[0]:
        pytest.skip("a Docker engine answers here")
    reports = tmp_path / "reports"
    cli = sample_cli(drill={"report_dir": str(reports), "work_dir": str(work_dir)})
    assert cli("backup", "db").code == 0
    result = cli("drill", "run", "--sandbox", "docker")
    assert result.code == 5, result.err
    assert "docker" in result.err
    assert not [k for k in list_keys(local_repo) if k.startswith("evidence/")]
    assert not list(reports.glob("*/report.json"))
    record = parse_attempt(read_object(local_repo, attempt_key("drill-run", "")))
    assert record.result == "error" and record.exit_code == 5
    assert record.error is not None and "docker" in record.error
    status = cli("status", "--json")
    (check,) = [c for c in json.loads(status.out)["checks"] if c["kind"] == "attempt"]
    assert "could not start" in check["detail"]
    history = cli("drill", "history")
    assert "FAIL" not in history.out.upper().replace("FAILED", "")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"schema_version": 1, "command": "rm -rf", "scope": "odoo", "result": "ok",'
        b' "exit_code": 0, "finished_at": "2026-11-27T12:00:00Z"}',
        b'{"schema_version": 1, "command": "backup-db", "scope": "other", "result": "ok",'
        b' "exit_code": 0, "finished_at": "2026-11-27T12:00:00Z"}',
        b'{"schema_version": 1, "command": "backup-db", "scope": "odoo", "result": "ok",'
        b' "exit_code": 999, "finished_at": "2026-11-27T12:00:00Z"}',
        b'{"schema_version": 1, "command": "backup-db", "scope": "odoo", "result": "ok",'
        b' "exit_code": 0, "finished_at": "2026-11-27T12:00:00Z", "error": "'
        + b"x" * 20000
        + b'"}',
    ],
    ids=["garbage", "array", "command", "key-mismatch", "exit-code", "oversize"],
)
def test_a_hostile_attempt_record_is_reported_unreadable_never_believed(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    local_repo: Repo,
    body: bytes,
) -> None:
    config = write_config(tmp_path / "c.yaml", pg, local_repo)
    cli = Cli(capsys, config)
    write_object(local_repo, attempt_key("backup-db", "odoo"), body)
    result = cli("status", "--json")
    doc = json.loads(result.out)
    assert not [c for c in doc["checks"] if c["kind"] == "attempt"]
    (repository,) = [c for c in doc["checks"] if c["kind"] == "repository"]
    assert "status/backup-db-odoo.json" in repository["detail"]
    assert "internal error" not in result.err


def test_an_unwritable_repository_does_not_fail_the_command_for_its_attempt_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pg: ConnParams, local_repo: Repo
) -> None:
    """Recording is best effort: the command's own exit code stands."""
    config = write_config(tmp_path / "c.yaml", pg, local_repo)
    cli = Cli(capsys, config)
    root = Path(local_repo.url.removeprefix("file://"))
    root.mkdir(parents=True, exist_ok=True)
    (root / "status").write_text("a file where the directory would be")
    result = cli("backup", "db", "-d", "no_such_db")
    assert result.code != 0
    assert "internal error" not in result.err
    assert "cannot record the attempt" in result.err


def test_a_failure_older_than_the_newest_committed_backup_is_superseded() -> None:
    """A record of the later success lost (best effort): the committed backup says more."""
    stale = Attempt(
        command="backup-db",
        scope="odoo",
        result="failed",
        exit_code=5,
        finished_at=NOW - timedelta(hours=3),
        error="cannot connect to PostgreSQL",
    )
    assert evaluate(_facts(stale), Policy(), NOW).state == State.OK


def test_attempt_keys_never_collide() -> None:
    """The run as a whole, plain names and digests of other names: distinct keys."""
    scopes = ["", "odoo", "~all", "a b", "x" * 300, "é", "../etc"]
    keys = [attempt_key("backup-db", s) for s in scopes]
    assert len(set(keys)) == len(keys)
    assert all(k.startswith("status/backup-db-") and k.count("/") == 1 for k in keys)
    assert attempt_key("backup-db", "odoo") == "status/backup-db-odoo.json"


class _MeetingStorage(LocalStorage):
    """A local repository whose writes wait (up to 5 s each) until two have been in
    flight at once; from then on none waits. Writes made one after the other never meet
    (``most_in_flight`` stays 1). Unlike a barrier, a write left without a partner (the
    second record of a scope waits for the first) is only delayed, never lost."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._changed = threading.Condition()
        self.in_flight = 0
        self.most_in_flight = 0

    def put_bytes(self, key: str, data: bytes, **kw: Any) -> None:
        with self._changed:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self._changed.notify_all()
            self._changed.wait_for(lambda: self.most_in_flight >= 2, timeout=5)
        try:
            super().put_bytes(key, data, **kw)
        finally:
            with self._changed:
                self.in_flight -= 1


def test_the_records_of_a_run_are_written_at_once_each_scope_in_order(tmp_path: Path) -> None:
    """A run of many databases does not wait for each record's durable write in turn;
    two records of one scope still carry the history forward in their order."""
    storage = _MeetingStorage(tmp_path / "repo")
    failed = Attempt("backup-db", "a", "failed", 5, NOW - timedelta(hours=1), error="boom")
    ok = Attempt("backup-db", "a", "ok", 0, NOW)
    other = Attempt("backup-db", "b", "ok", 0, NOW)
    record_all(storage, [failed, ok, other, Attempt("backup-db", "c", "ok", 0, NOW)])
    records = {
        key: parse_attempt(storage.get_bytes(key))
        for key in (attempt_key("backup-db", s) for s in "abc")
    }
    a = records[attempt_key("backup-db", "a")]
    assert (a.result, a.last_failure_at, a.last_success_at) == ("ok", failed.finished_at, NOW)
    assert records[attempt_key("backup-db", "b")].result == "ok"
    assert storage.most_in_flight >= 2
