"""What a lock object says, and the pure decisions about it.

A lock object is hostile input like any other: one this backdrill did not write (not
JSON, a field missing or of the wrong type, a pid that is no process id, a time that is
no time) is a :class:`ForeignLock`. It is never taken over on its own and never an
internal error: it holds until ``backdrill unlock SCOPE --force`` removes it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from backdrill.runtime.timeutil import parse_time

#: Linux's PID_MAX_LIMIT (2**22); no process id is larger
MAX_PID = 4_194_304
_SHOWN = 80
_SCOPE = re.compile(r"[A-Za-z0-9_~%-][A-Za-z0-9_.~%-]{0,299}")


def valid_scope(scope: str) -> bool:
    """A scope as :func:`backdrill.repository.locks.db_scope` and friends write them: one key
    segment, no ``/``, no leading dot."""
    return _SCOPE.fullmatch(scope) is not None


def shown(value: object) -> str:
    """A hostile value, bounded, for a message (the CLI escapes control characters)."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


@dataclass(frozen=True)
class LockInfo:
    scope: str
    token: str
    command: str
    host: str
    pid: int
    run_id: str
    created_at: str
    expires_at: str

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=2).encode()

    @classmethod
    def parse(cls, data: bytes) -> LockInfo | ForeignLock:
        """The lock, or why it is not one this backdrill wrote."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            return ForeignLock("not JSON")
        if not isinstance(doc, dict):
            return ForeignLock("not a JSON object")
        fields: dict[str, object] = {}
        for name in cls.__dataclass_fields__:
            value = doc.get(name)
            if name == "pid":
                if type(value) is not int or not 0 < value <= MAX_PID:
                    return ForeignLock(f"pid {shown(value)} is not a process id")
            elif not isinstance(value, str):  # any length: a --run-id is the user's
                return ForeignLock(f"field {name} is missing or not text")
            fields[name] = value
        for name in ("created_at", "expires_at"):
            try:
                parse_time(str(fields[name]))
            except (ValueError, OverflowError):
                return ForeignLock(f"{name} {shown(fields[name])} is not a time")
        return cls(**fields)  # type: ignore[arg-type]

    @property
    def expires(self) -> datetime:
        return parse_time(self.expires_at)

    def describe(self) -> str:
        return (
            f"{shown(self.command)} on host {shown(self.host)}, pid {self.pid}, "
            f"run {shown(self.run_id)}, since {shown(self.created_at)}, "
            f"expiring {shown(self.expires_at)}"
        )


@dataclass(frozen=True)
class ForeignLock:
    """A lock object this backdrill did not write, and why it is not one."""

    reason: str

    def describe(self) -> str:
        return f"an object backdrill did not write ({self.reason})"


Holder = LockInfo | ForeignLock


def is_stale(holder: Holder, now: datetime, host: str) -> str | None:
    """Pure but for a pid probe: why the lock may be taken over, or None if it holds."""
    if isinstance(holder, ForeignLock):
        return None
    if holder.expires < now:
        return f"expired at {holder.expires_at}"
    if holder.host == host and not pid_alive(holder.pid):
        return f"process {holder.pid} no longer runs on this host"
    return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def held_message(
    scope: str, key: str, holder: Holder, now: datetime, ttl: timedelta
) -> tuple[str, str]:
    """The message and hint of :class:`backdrill.runtime.errors.LockHeld` for a held lock."""
    message = f"{scope} is locked by {holder.describe()}"
    if isinstance(holder, ForeignLock):
        return (
            f"{message}; lock object {key}",
            f"if no run holds it, remove it with `backdrill unlock {scope} --force`",
        )
    if holder.expires - now > 10 * ttl:  # a refreshed lock expires within one lease
        message += f", far past this backdrill's {int(ttl.total_seconds())} s lease"
    hint = (
        "wait for it, or pass --wait DURATION; if that run is gone, "
        f"`backdrill unlock {scope}` removes the lock once it has expired or its process "
        f"is gone from this host, `backdrill unlock {scope} --force` at once"
    )
    return f"{message}; lock object {key}", hint
