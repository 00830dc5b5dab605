"""Polling with a deadline instead of fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.01, what: str = ""
) -> None:
    """Return as soon as ``predicate()`` is true; fail once ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {what or predicate}")
        time.sleep(interval)
