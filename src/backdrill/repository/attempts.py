"""The last attempt of each command per scope (database or filestore source), kept in
the repository under ``status/``: a failed run shows in ``status`` and the metrics at
once, not when the age of the last success passes its target.

One small JSON document per ``(command, scope)``, overwritten by each run. Writing it is
best effort: a record that cannot be written is a warning, never the command's failure.
Read back, a record is hostile input: bounded in size, strictly parsed, and one that
does not parse is reported as unreadable, never believed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from backdrill.repository import layout
from backdrill.repository.documents import read_document
from backdrill.repository.limits import MAX_ATTEMPT_BYTES, MAX_ATTEMPT_RECORDS
from backdrill.runtime.errors import BackdrillError, ExternalServiceError
from backdrill.runtime.redact import SECRETS
from backdrill.runtime.timeutil import isoformat, parse_time
from backdrill.storage import Storage

log = logging.getLogger(__name__)

#: the repository prefix of attempt records: ``status/<command>-<scope>.json``
SCHEMA_VERSION = 1
#: the commands that record their attempts, and the kind of their scope
COMMANDS = {"backup-db": "database", "backup-files": "source", "drill-run": "database"}
RESULTS = ("ok", "failed", "error")
MAX_ERROR_CHARS = 300
MAX_SCOPE_CHARS = 200
_SAFE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,79}$")


@dataclass(frozen=True)
class Attempt:
    command: str  # a key of COMMANDS
    scope: str  # the database or the filestore source ("" when the run named none)
    result: str  # ok | failed | error (a drill that could not start)
    exit_code: int
    finished_at: datetime
    error: str | None = None
    duration_seconds: float | None = None
    size_bytes: int | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None

    @property
    def scope_kind(self) -> str:
        return COMMANDS[self.command]

    @property
    def failed(self) -> bool:
        return self.result != "ok"

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "command": self.command,
            "scope": self.scope,
            "result": self.result,
            "exit_code": self.exit_code,
            "finished_at": isoformat(self.finished_at),
            "error": self.error,
            "duration_seconds": self.duration_seconds,
            "size_bytes": self.size_bytes,
            "last_success_at": _iso(self.last_success_at),
            "last_failure_at": _iso(self.last_failure_at),
        }
        return json.dumps(doc, sort_keys=True).encode()


def _iso(moment: datetime | None) -> str | None:
    return isoformat(moment) if moment is not None else None


def error_line(text: str) -> str:
    """An error message as one bounded, secret-free line."""
    line = " ".join(SECRETS.redact(text).split())
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


def attempt_key(command: str, scope: str) -> str:
    """``status/backup-db-odoo.json``; the run as a whole (no scope) is ``~all``, and a
    scope that is not a plain name (any byte may be in a database name) is named by its
    digest, ``~<hex>`` (``~`` is never in a plain name: no two scopes share a key)."""
    if not scope:
        name = "~all"
    elif _SAFE.match(scope):
        name = scope
    else:
        name = "~" + hashlib.sha256(scope.encode()).hexdigest()[:32]
    return layout.attempt_key(command, name)


def new_attempt(
    command: str,
    scope: str,
    exit_code: int,
    finished_at: datetime,
    *,
    error: str | None = None,
    result: str | None = None,
    duration_seconds: float | None = None,
    size_bytes: int | None = None,
) -> Attempt:
    return Attempt(
        command=command,
        scope=scope[:MAX_SCOPE_CHARS],
        result=result or ("failed" if exit_code else "ok"),
        exit_code=exit_code,
        finished_at=finished_at,
        error=error_line(error) if error else None,
        duration_seconds=duration_seconds,
        size_bytes=size_bytes,
    )


def record_attempt(storage: Storage, attempt: Attempt) -> None:
    """Write ``attempt`` over the previous one of its scope, carrying the times of the
    last success and failure forward. Best effort: never raises."""
    key = attempt_key(attempt.command, attempt.scope)
    try:
        previous = _read_one(storage, key)
    except Exception:  # missing, unreadable or unreachable: the history starts again
        previous = None
    success = previous.last_success_at if previous else None
    failure = previous.last_failure_at if previous else None
    if attempt.failed:
        failure = attempt.finished_at
    else:
        success = attempt.finished_at
    record = replace(attempt, last_success_at=success, last_failure_at=failure)
    try:
        storage.put_bytes(key, record.to_json())
    except Exception as exc:  # best effort: the command's own outcome stands
        log.warning("cannot record the attempt in %s: %s", key, error_line(str(exc)))


#: records written at once: each is a read and a durable write (two fsyncs on a local
#: repository, a round trip or two to S3), and a run of 50 databases writes 51
RECORD_WRITERS = 8


def record_all(storage: Storage, attempts: Sequence[Attempt]) -> None:
    """``record_attempt`` for each of ``attempts``, up to RECORD_WRITERS at once; those
    of the same scope in their order, one after the other. Best effort: never raises."""
    by_key: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        by_key.setdefault(attempt_key(attempt.command, attempt.scope), []).append(attempt)

    def write(same_scope: list[Attempt]) -> None:
        for attempt in same_scope:
            record_attempt(storage, attempt)

    if len(by_key) <= 1:
        for same_scope in by_key.values():
            write(same_scope)
        return
    with ThreadPoolExecutor(min(RECORD_WRITERS, len(by_key)), "attempts") as pool:
        list(pool.map(write, by_key.values()))


def _read_one(storage: Storage, key: str) -> Attempt:
    return parse_attempt(read_document(storage, key, limit=MAX_ATTEMPT_BYTES))


def _text(doc: dict[str, Any], name: str, *, optional: bool = False) -> str | None:
    value = doc.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} is not a string")
    return value


def _number(doc: dict[str, Any], name: str) -> float | None:
    value = doc.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} is not a non-negative number")
    return float(value)


def _moment(doc: dict[str, Any], name: str, *, optional: bool = True) -> datetime | None:
    value = _text(doc, name, optional=optional)
    return parse_time(value) if value is not None else None


def parse_attempt(data: bytes) -> Attempt:
    """Strict: ValueError (or TypeError) for anything but a record this version wrote."""
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"not an attempt record of schema_version {SCHEMA_VERSION}")
    command = _text(doc, "command")
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}")
    result = _text(doc, "result")
    if result not in RESULTS:
        raise ValueError(f"unknown result {result!r}")
    code = doc.get("exit_code")
    if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255:
        raise ValueError("exit_code is not 0..255")
    scope = _text(doc, "scope") or ""
    error = _text(doc, "error", optional=True)
    finished = _moment(doc, "finished_at", optional=False)
    assert finished is not None
    size = _number(doc, "size_bytes")
    return Attempt(
        command=command,
        scope=scope[:MAX_SCOPE_CHARS],
        result=result,
        exit_code=code,
        finished_at=finished,
        error=error_line(error) if error else None,
        duration_seconds=_number(doc, "duration_seconds"),
        size_bytes=int(size) if size is not None else None,
        last_success_at=_moment(doc, "last_success_at"),
        last_failure_at=_moment(doc, "last_failure_at"),
    )


def read_attempts(storage: Storage, broken: list[str] | None = None) -> list[Attempt]:
    """Every attempt record (at most MAX_ATTEMPT_RECORDS), sorted by command and scope;
    an unreadable one goes to ``broken``. A storage failure propagates."""
    out: list[Attempt] = []
    for n, info in enumerate(storage.list_objects(layout.STATUS_ROOT)):
        if n >= MAX_ATTEMPT_RECORDS:
            if broken is not None:
                broken.append(f"{layout.STATUS_ROOT}: more than {MAX_ATTEMPT_RECORDS} records")
            break
        if not info.key.endswith(".json") or info.key.count("/") != 1:
            continue
        try:
            attempt = _read_one(storage, info.key)
            if attempt_key(attempt.command, attempt.scope) != info.key:
                raise ValueError("its command and scope do not match its key")
            out.append(attempt)
        except ExternalServiceError:
            raise
        except BackdrillError as exc:
            if broken is not None:
                broken.append(f"{info.key}: {exc}")
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            if broken is not None:
                broken.append(f"{info.key}: unreadable attempt record: {error_line(str(exc))}")
    return sorted(out, key=lambda a: (a.command, a.scope))
