"""Option parsing shared by several commands."""

from __future__ import annotations

from datetime import timedelta

from backdrill.errors import UsageError
from backdrill.timeutil import parse_duration


def parse_wait(value: str | None) -> timedelta | None:
    """``--wait DURATION``: how long to wait for a held lock (None: fail at once)."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"--wait: {exc}") from None
