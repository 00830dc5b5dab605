"""Retry policies for the fault tests (``storage -> retry`` in a test config)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from backdrill.config.model import RetryConfig
from helpers.cli import Repo

DEFAULT_RETRY: dict[str, Any] = RetryConfig().model_dump()
#: the default shape with shorter waits: 7 retries over about 6 s
QUICK_RETRY = {"attempts": 8, "max_seconds": 30, "base_seconds": 0.05, "max_wait_seconds": 2}
#: the default policy scaled down about 20x so that the outage tests stay short:
#: 4 attempts over about 4 s (defaults: 8 attempts, 90 s); tests add a clean-up budget
SCALED_RETRY = {"attempts": 4, "max_seconds": 4, "base_seconds": 0.2, "max_wait_seconds": 1}


def with_retry(repo: Repo, retry: dict[str, Any]) -> Repo:
    return replace(repo, storage={**repo.storage, "retry": retry})
