"""Rotation: the age of each secret file (``*_file`` keys) by its mtime, against the
rotation period (``security -> rotation_days``, a quarter by default).

Reading the mtimes is :func:`secret_file_ages`; deciding is pure (:func:`overdue`).
The files' contents are never read here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from backdrill.config.loading import one_line
from backdrill.config.model import Config
from backdrill.runtime.timeutil import human_duration


@dataclass(frozen=True)
class SecretFileAge:
    key: str  # the config key path, e.g. ``postgres -> password_file``
    path: Path
    age_seconds: float | None  # None: the file cannot be examined
    error: str | None = None


def secret_files(config: Config) -> list[tuple[str, Path]]:
    """Every secret file the config names, with its key path."""
    enc = config.storage.encryption
    candidates = (
        ("postgres -> password_file", config.postgres.password_file),
        ("storage -> secret_access_key_file", config.storage.secret_access_key_file),
        (
            "files -> s3 -> secret_access_key_file",
            config.files.s3.secret_access_key_file if config.files.s3 else None,
        ),
        ("storage -> encryption -> identity_file", enc.identity_file if enc else None),
        ("notify -> webhook_url_file", config.notify.webhook_url_file),
        ("drill -> server_dsn_file", config.drill.server_dsn_file),
        *(
            (f"sources -> {name} -> password_file", source.password_file)
            for name, source in config.sources.items()
        ),
    )
    return [(key, path) for key, path in candidates if path is not None]


def secret_file_ages(config: Config, now: datetime) -> list[SecretFileAge]:
    ages: list[SecretFileAge] = []
    for key, path in secret_files(config):
        try:
            mtime = os.stat(path).st_mtime
        except OSError as exc:
            ages.append(SecretFileAge(key, path, None, exc.strerror or type(exc).__name__))
            continue
        age = (now - datetime.fromtimestamp(mtime, UTC)).total_seconds()
        ages.append(SecretFileAge(key, path, max(age, 0.0)))
    return ages


def overdue(age: SecretFileAge, rotation_days: int) -> bool:
    """Pure: older than the rotation period, or not examinable."""
    return age.age_seconds is None or age.age_seconds > rotation_days * 86400


def describe(age: SecretFileAge, rotation_days: int) -> str:
    """Pure: one line naming the file (the check's name holds the key), never its
    content."""
    where = one_line(str(age.path))
    if age.age_seconds is None:
        return f"{where}: cannot examine: {one_line(str(age.error))}"
    text = f"{where} unchanged for {human_duration(age.age_seconds)}"
    if overdue(age, rotation_days):
        return f"{text}: older than the rotation period of {rotation_days} days; rotate it"
    return f"{text} (rotate every {rotation_days} days)"
