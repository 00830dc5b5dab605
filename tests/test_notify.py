"""Webhook notifications of ``backup db``, against a local HTTP receiver."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from backdrill.config.model import NotifyConfig
from backdrill.monitoring.notify import Event, send
from backdrill.pg.connection import ConnParams
from backdrill.sample.odoo import SampleInfo
from helpers.cli import Cli, Repo, SampleCli, write_config
from helpers.ports import refusing_port
from helpers.repo import manifests, write_object
from helpers.webhook import Receiver


def _dead_url() -> str:
    return f"http://127.0.0.1:{refusing_port()}/hooks/T0/B0/dead-t0ken"


Notifying = Callable[..., Cli]


@pytest.fixture
def notifying(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pg: ConnParams, local_repo: Repo
) -> Notifying:
    """``notifying(url, **notify)``: the CLI on ``local_repo``, notifying the webhook
    ``url`` (read from a file) as ``notify`` says."""

    def configure(url: str, **notify: object) -> Cli:
        url_file = tmp_path / "webhook_url"
        url_file.write_text(url + "\n")
        notify_section = {"webhook_url_file": str(url_file), **notify}
        return Cli(capsys, write_config(tmp_path / "c.yaml", pg, local_repo, notify=notify_section))

    return configure


def test_failing_backup_posts_exactly_one_event(notifying: Notifying) -> None:
    with Receiver() as receiver:
        result = notifying(receiver.url)(
            "--debug",
            "--run-id",
            "run-fail-1",
            "backup",
            "db",
            "--database",
            "no_such_db",
        )
    assert result.code == 5
    assert len(receiver.requests) == 1
    (event,) = receiver.accepted()
    assert receiver.requests[0]["type"] == "application/json"
    assert receiver.requests[0]["path"] == receiver.path
    assert event["kind"] == "backup db"
    assert event["status"] == "failure"
    assert event["database"] == "no_such_db"
    assert event["run_id"] == "run-fail-1"
    assert event["exit_code"] == 5
    assert "no_such_db" in event["error"]
    assert event["rpo_target_seconds"] == 86400 and event["rto_target_seconds"] == 14400
    assert event["text"].startswith("backdrill: backup db of no_such_db FAILED on ")
    assert receiver.url not in result.err + result.out
    assert "s3cr3t-t0ken" not in result.err + result.out


def test_receiver_failing_three_times_then_ok_gets_the_event(notifying: Notifying) -> None:
    with Receiver(codes=[500, 500, 500]) as receiver:
        cli = notifying(receiver.url)
        started = time.monotonic()
        result = cli("backup", "db", "--database", "nope")
        elapsed = time.monotonic() - started
    assert result.code == 5
    assert receiver.answers == [500, 500, 500, 200]
    (event,) = receiver.accepted()
    assert event["database"] == "nope" and event["status"] == "failure"
    assert all(r["body"] == event for r in receiver.requests)  # the same event, re-sent
    assert elapsed < 30
    assert '"message": "webhook notified"' in result.err


def test_dead_receiver_does_not_change_a_successful_backups_exit_code(
    notifying: Notifying, shared_sample: SampleInfo
) -> None:
    url = _dead_url()
    cli = notifying(url, on=["failure", "success"], retry_seconds=2)
    result = cli("backup", "db", "--database", shared_sample.database)
    assert result.code == 0, result.err
    assert "committed backup" in result.out
    assert "webhook notification failed after 2 s of retries" in result.err
    assert url not in result.err and "dead-t0ken" not in result.err


def test_dead_receiver_does_not_change_a_failing_backups_exit_code(
    notifying: Notifying,
) -> None:
    cli = notifying(_dead_url(), retry_seconds=1)
    result = cli("backup", "db", "--database", "nope")
    assert result.code == 5
    assert "webhook notification failed" in result.err


def test_success_is_posted_only_when_configured(
    notifying: Notifying, shared_sample: SampleInfo
) -> None:
    with Receiver() as receiver:
        quiet = notifying(receiver.url)  # default: on [failure]
        assert quiet("backup", "db", "-d", shared_sample.database).code == 0
        assert receiver.requests == []
        loud = notifying(receiver.url, on=["failure", "success"])
        assert loud("backup", "db", "-d", shared_sample.database).code == 0
    (event,) = receiver.accepted()
    assert event["status"] == "success"
    assert event["database"] == shared_sample.database
    assert event["stored_size"] > 0 and event["raw_size"] >= event["stored_size"]
    assert event["duration_seconds"] >= 0
    assert event["backup_id"] in event["text"]
    assert event["recovery_point"].endswith("Z")


@pytest.mark.slow
def test_client_error_is_not_retried() -> None:
    with Receiver(codes=[404]) as receiver:
        config = NotifyConfig.model_validate({"webhook_url": receiver.url, "retry_seconds": 5})
        event = Event(kind="backup db", status="failure", run_id="r", host="h", error="boom")
        assert send(config, event) is False
    assert receiver.answers == [404]


def test_payload_is_slack_and_n8n_compatible() -> None:
    event = Event(
        kind="backup db", status="failure", run_id="r1", host="db1", database="odoo", error="x"
    )
    body = event.payload()
    assert body["text"] == "backdrill: backup db of odoo FAILED on db1: x (run r1)"
    assert body["source"] == "backdrill"
    for key in (
        "kind",
        "status",
        "run_id",
        "database",
        "duration_seconds",
        "stored_size",
        "rpo_seconds",
        "rto_seconds",
        "error",
    ):
        assert key in body


def test_drill_posts_its_result_with_rpo_and_rto(
    sample_cli: SampleCli, tmp_path: Path, shared_sample: SampleInfo, local_repo: Repo
) -> None:
    with Receiver() as receiver:
        url_file = tmp_path / "webhook_url"
        url_file.write_text(receiver.url)
        cli = sample_cli.drilling(
            notify={"webhook_url_file": str(url_file), "on": ["failure", "success"]}
        )
        assert cli("backup", "db").code == 0
        passed = cli("drill", "run")
        assert passed.code == 0, passed.err
        (manifest,) = manifests(local_repo)
        write_object(
            local_repo, f"db/{shared_sample.database}/{manifest['id']}/dump.pgdump.zst", b"x"
        )
        failed = cli("drill", "run")
        assert failed.code == 4
    backup_ok, drill_ok, drill_failed = receiver.accepted()
    assert backup_ok["kind"] == "backup db"
    assert drill_ok["kind"] == "drill run" and drill_ok["status"] == "success"
    assert (
        drill_ok["database"] == shared_sample.database and drill_ok["backup_id"] == manifest["id"]
    )
    assert drill_ok["rpo_seconds"] > 0 and drill_ok["rto_seconds"] > 0
    assert drill_ok["rpo_target_seconds"] == 86400 and drill_ok["rto_target_seconds"] == 14400
    assert drill_failed["status"] == "failure" and drill_failed["exit_code"] == 4
    assert "checksum" in drill_failed["error"]
    assert drill_failed["text"].startswith(
        f"backdrill: drill run of {shared_sample.database} FAILED"
    )
