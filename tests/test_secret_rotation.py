"""Rotation: ``status`` and ``config check`` report the age of each secret file (by its
mtime) and turn WARNING past the rotation period (a quarter, ``security ->
rotation_days``); a lowered TLS minimum is a WARNING too."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backdrill.pg.connection import ConnParams
from helpers.cli import Cli, Repo, repo_config
from helpers.seed import write_drill, write_manifest

DAY = 86400
IDENTITY = "AGE-SECRET-KEY-1" + "Q" * 58  # never read by these checks: only its age
RECIPIENT = "age1" + "q" * 58


def aged(path: Path, days: float) -> Path:
    when = time.time() - days * DAY
    os.utime(path, (when, when))
    return path


def fresh_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    now = datetime.now(UTC)
    write_manifest(repo, "odoo", now - timedelta(hours=1))
    write_drill(repo, now - timedelta(days=1))
    return repo


def secret_file(path: Path, text: str, days_old: float) -> Path:
    path.write_text(text + "\n")
    return aged(path, days_old)


def config(
    tmp_path: Path,
    postgres: dict[str, Any] | None = None,
    storage: dict[str, Any] | None = None,
    **sections: Any,
) -> Path:
    return repo_config(
        tmp_path / "backdrill.yaml",
        Repo(f"file://{fresh_repo(tmp_path)}", storage or {}),
        postgres={"databases": ["odoo"], **(postgres or {})},
        **sections,
    )


def test_status_warns_naming_a_password_file_older_than_a_quarter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = secret_file(tmp_path / "pg_password", "not-a-real-password", 0)
    path = config(tmp_path, {"password_file": str(secret)})
    cli = Cli(capsys, path)
    fresh = cli("status")
    assert fresh.code == 0, fresh.out

    aged(secret, 91)
    result = cli("status")
    assert result.code == 1, result.out
    first = result.out.splitlines()[0]
    assert first.startswith("BACKDRILL WARNING - secret postgres -> password_file:")
    assert str(secret) in first
    assert "older than the rotation period of 90 days" in first
    assert "not-a-real-password" not in result.out + result.err

    doc = json.loads(cli("status", "--json").out)
    (check,) = [c for c in doc["checks"] if c["kind"] == "security"]
    assert check["state"] == "WARNING"
    assert 91 * DAY - 60 < check["age_seconds"] < 91 * DAY + 60


def test_the_rotation_period_is_configurable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = secret_file(tmp_path / "s3_secret", "fake-secret-value", 100)
    storage = {"secret_access_key_file": str(secret)}
    path = config(tmp_path, storage=storage, security={"rotation_days": 120})
    assert Cli(capsys, path)("status").code == 0
    path = config(tmp_path, storage=storage, security={"rotation_days": 90})
    result = Cli(capsys, path)("status")
    assert result.code == 1
    assert "secret storage -> secret_access_key_file" in result.out
    assert "fake-secret-value" not in result.out + result.err


def test_a_lowered_tls_minimum_and_a_missing_identity_file_warn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, security={"tls_min_version": "1.2"})
    result = Cli(capsys, path)("status")
    assert result.code == 1
    assert "tls minimum" in result.out
    assert "below the standard minimum TLS 1.3" in result.out

    encryption = {"recipients": [RECIPIENT], "identity_file": str(tmp_path / "gone.key")}
    path = config(tmp_path, storage={"encryption": encryption})
    result = Cli(capsys, path)("status")
    assert result.code == 1
    assert "storage -> encryption -> identity_file" in result.out
    assert "cannot examine" in result.out


def test_config_check_shows_each_secret_files_age(
    tmp_path: Path, pg: ConnParams, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pg.password is not None
    password = secret_file(tmp_path / "pg_password", pg.password, 0)
    identity = secret_file(tmp_path / "age.key", IDENTITY, 200)
    webhook = secret_file(tmp_path / "webhook_url", "http://127.0.0.1:9/hooks/fake-token", 10)
    postgres = {
        "host": pg.host,
        "port": pg.port,
        "user": pg.user,
        "sslmode": "disable",
        "password_file": str(password),
        "databases": [],
    }
    encryption = {"recipients": [RECIPIENT], "identity_file": str(identity)}
    path = config(
        tmp_path,
        postgres,
        storage={"encryption": encryption},
        notify={"webhook_url_file": str(webhook)},
    )
    cli = Cli(capsys, path)
    result = cli("config", "check")
    # the fake webhook answers nothing: its row fails (config check probes it), no other
    failing = [ln for ln in result.out.splitlines() if "FAIL" in ln and "webhook " not in ln]
    assert not failing, result.out + result.err
    lines = {
        key: " ".join(ln.split())
        for key in (
            "postgres -> password_file",
            "storage -> encryption -> identity_file",
            "notify -> webhook_url_file",
        )
        for ln in result.out.splitlines()
        if f"secret age {key}" in ln
    }
    assert lines["postgres -> password_file"].startswith("│ ok")
    assert lines["notify -> webhook_url_file"].startswith("│ ok")
    assert "unchanged for 10d" in lines["notify -> webhook_url_file"]
    assert lines["storage -> encryption -> identity_file"].startswith("│ WARNING")
    assert "unchanged for 200d" in lines["storage -> encryption -> identity_file"]
    assert "1 warning(s)" in result.out
    assert "postgres TLS" in result.out and "not in use (sslmode disable)" in result.out
    assert "fake-token" not in result.out + result.err
