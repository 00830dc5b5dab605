"""Hostile names on the way out: terminal escape sequences shown, never obeyed (list, show,
verify, error lines, log lines); a webhook's text with no Slack markup; Nagios output
with no injected performance data; Prometheus labels escaped once, by prometheus_client."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backdrill.cli.app import main
from backdrill.pg.connection import ConnParams
from backdrill.runtime.logs import JsonFormatter, TextFormatter
from helpers.cli import Cli, Repo, run_cli, write_config
from helpers.files import files_config
from helpers.history import fake_db_backup, storage_of
from helpers.repo import list_keys, read_object, write_object
from helpers.seed import write_drill, write_snapshot
from helpers.webhook import Receiver

ANSI = "red\x1b[31mname\x07"  # recolours the terminal, rings its bell
SHOWN = "red\\x1b[31mname\\x07"


def _no_raw_controls(*outputs: str) -> None:
    for output in outputs:
        assert "\x1b" not in output and "\x07" not in output, output


def _repo_config(tmp_path: Path, repo: Path, extra: str = "") -> Path:
    config = tmp_path / "c.yaml"
    config.write_text(f"storage: {{url: 'file://{repo}'}}\n{extra}")
    return config


def _backup(repo: Path, database: str, created_at: datetime) -> str:
    """A committed backup of ``database`` written through backdrill's own storage."""
    return fake_db_backup(storage_of(Repo(f"file://{repo}")), database, created_at)


def test_list_show_verify_show_a_database_names_escape_sequences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    backup_id = _backup(repo, ANSI, datetime.now(UTC) - timedelta(hours=1))
    config = _repo_config(tmp_path, repo)
    cli = Cli(capsys, config)
    listed = cli("list")
    assert listed.code == 0, listed.err
    shown = cli("show", backup_id)
    assert shown.code == 0, shown.err
    verified = cli("verify", backup_id)
    assert verified.code == 0, verified.err
    for result in (listed, shown, verified):
        _no_raw_controls(result.out, result.err)
        assert SHOWN in result.out


def test_show_and_verify_of_a_snapshot_escape_file_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    source = tmp_path / "filestore"
    source.mkdir()
    (source / f"{ANSI}.txt").write_bytes(b"attachment " * 500)
    os.mkfifo(source / "fifo\x1b]0;title\x07")  # a special file: skipped, and named
    config = files_config(tmp_path / "c.yaml", local_repo, str(source))
    cli = Cli(capsys, config)
    assert cli("backup", "files").code == 0
    listed = cli("list", "files", "--json")
    snapshot_id = json.loads(listed.out)[-1]["id"]
    shown = cli("show", snapshot_id)
    assert shown.code == 0, shown.err
    assert "skipped: fifo\\x1b]0;title\\x07: " in shown.out
    # the one content, in the one pack
    (key,) = [k for k in list_keys(local_repo, "files/packs/") if not k.endswith(".index")]
    data = bytearray(read_object(local_repo, key))
    data[len(data) // 2] ^= 0x01
    write_object(local_repo, key, bytes(data))
    verified = cli("verify", snapshot_id, "--read-data")
    assert verified.code == 4
    assert f"damaged: file {SHOWN}.txt: " in verified.out
    for result in (shown, verified):
        _no_raw_controls(result.out, result.err)


def test_error_line_and_log_lines_escape_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    _backup(repo, "odoo", datetime.now(UTC))
    config = _repo_config(tmp_path, repo)
    capsys.readouterr()
    code = main(["--log-format", "text", "--config", str(config), "show", ANSI])
    out, err = capsys.readouterr()
    assert code == 4
    assert SHOWN in err
    _no_raw_controls(out, err)
    record = logging.makeLogRecord(
        {"msg": "dump of %s", "args": (ANSI,), "fields": {"database": ANSI}}
    )
    line = TextFormatter().format(record)
    _no_raw_controls(line)
    assert f"dump of {SHOWN}" in line and f"database={SHOWN}" in line
    try:
        raise ValueError(ANSI)
    except ValueError:
        record = logging.makeLogRecord({"msg": "failed", "exc_info": sys.exc_info()})
    line = TextFormatter().format(record)
    _no_raw_controls(line)
    assert f"ValueError: {SHOWN}" in line and "Traceback" in line
    # JSON escapes C0 itself; C1 (0x9b: a one-byte CSI) and bidi overrides it leaves raw
    record = logging.makeLogRecord({"msg": "dump of %s", "args": ("a\x9b31m\u202eb",)})
    line = JsonFormatter().format(record)
    assert "\x9b" not in line and "\u202e" not in line
    assert json.loads(line)["message"] == "dump of a\x9b31m\u202eb"


HOSTILE_DB = "<!channel> <http://evil.example|click> & \x1b[31m"


def test_webhook_text_escapes_a_hostile_database_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pg: ConnParams, local_repo: Repo
) -> None:
    with Receiver() as receiver:
        url_file = tmp_path / "webhook_url"
        url_file.write_text(receiver.url + "\n")
        config = write_config(
            tmp_path / "c.yaml", pg, local_repo, notify={"webhook_url_file": str(url_file)}
        )
        result = run_cli(capsys, "--config", str(config), "backup", "db", "--database", HOSTILE_DB)
    assert result.code == 5
    (event,) = receiver.accepted()
    text = event["text"]
    assert "<" not in text and ">" not in text and "\x1b" not in text
    assert text.startswith(
        "backdrill: backup db of &lt;!channel&gt; &lt;http://evil.example|click&gt; "
        "&amp; \\x1b[31m FAILED on "
    )
    assert event["database"] == HOSTILE_DB  # the data field stays the name itself


def test_nagios_output_escapes_names_in_text_and_perfdata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    now = datetime.now(UTC)
    name = "it's a=b | 'x'=1s;1;1;0\nNEXT"  # would forge a label and a second line
    _backup(repo, name, now - timedelta(hours=30))  # stale: named in the text
    _backup(repo, "odoo", now - timedelta(hours=1))
    write_snapshot(repo, "odoo", now - timedelta(hours=1))
    write_drill(repo, now - timedelta(hours=1))
    config = _repo_config(tmp_path, repo, "postgres: {databases: [odoo]}\n")
    cli = Cli(capsys, config)
    result = cli("status")
    assert result.code == 2
    first, *rest = result.out.splitlines()
    assert not any(line.startswith("NEXT") for line in rest)
    text, perf = first.split("|", 1)  # the first | starts the performance data
    assert text.startswith("BACKDRILL CRITICAL - database it's a=b \u00a6 'x'=1s;1;1;0\\nNEXT: ")
    labels = re.findall(r"'((?:[^']|'')*)'=\d+s;\d+;\d+;0(?: |$)", perf.strip())
    assert labels == [
        "database it''s a_b \u00a6 ''x''_1s;1;1;0\\nNEXT",
        "database odoo",
        "filestore odoo",
        "restore drill",
    ], perf


def test_prometheus_labels_are_escaped_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    name = 'a"b\\c\nd}e'
    _backup(repo, name, datetime.now(UTC) - timedelta(hours=1))
    config = _repo_config(tmp_path, repo)
    cli = Cli(capsys, config)
    target = tmp_path / "backdrill.prom"
    result = cli("--metrics-file", str(target), "status")
    assert result.code == 2, result.err
    databases = {
        s.labels["database"]
        for f in text_string_to_metric_families(target.read_text())
        for s in f.samples
        if "database" in s.labels
    }
    assert databases == {name}
