"""Time helpers and the time-sortable ids of backups, snapshots and drills."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta

ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
#: how far ahead of this host's clock a stored time may lie (another host's clock, the
#: database server's statement_timestamp()); beyond it the document is not believed
MAX_CLOCK_SKEW = timedelta(minutes=5)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(at: datetime | None = None) -> str:
    """``20261126T030000Z-1a2b3c``: sorts by time, unique by a random suffix."""
    moment = (at or utcnow()).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def is_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value))


def isoformat(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    """Parse an ISO 8601 time; a time without zone is taken as UTC. ValueError if bad."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_duration(value: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``2h``, ``1d``; ValueError if bad."""
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"not a duration: {value!r} (examples: 30s, 15m, 2h)")
    number = float(match.group(1))
    unit = match.group(2) or "s"
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return timedelta(seconds=number * scale)


def human_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{sec:02d}s"


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
