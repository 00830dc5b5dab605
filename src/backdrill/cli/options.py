"""Option parsing shared by several commands."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import typer

from backdrill.runtime.errors import UsageError
from backdrill.runtime.timeutil import parse_duration, parse_time

#: ``--wait DURATION`` of the commands that take a lock (parsed by :func:`parse_wait`)
WaitOption = Annotated[
    str | None,
    typer.Option("--wait", metavar="DURATION", help="Wait this long for a held lock (15m)."),
]

#: ``--backup ID`` of the commands that restore one database backup (restore db, drill run)
BackupOption = Annotated[str, typer.Option("--backup", help="Backup id or 'latest'.")]
#: ``--source NAME`` of the commands that pick a PostgreSQL source (backup db, restore db,
#: drill run); ``backup files --source`` is a filestore location, declared there
SourceOption = Annotated[
    str | None,
    typer.Option(
        "--source", help="This PostgreSQL source only (sources:, by name; default: every source)."
    ),
]
#: ``--jobs N`` of the commands that run pg_restore (restore db, drill run)
RestoreJobsOption = Annotated[int | None, typer.Option("--jobs", min=1, help="pg_restore jobs.")]

#: ``--before TIME`` of restore db and restore files (parsed by :func:`parse_before`)
BeforeOption = Annotated[
    str | None,
    typer.Option(
        "--before",
        help="The newest backup (restore db) or snapshot (restore files) created before "
        "this time; UTC if it names no zone.",
    ),
]


def parse_wait(value: str | None) -> timedelta | None:
    """``--wait DURATION``: how long to wait for a held lock (None: fail at once)."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"--wait: {exc}") from None


def parse_before(value: str | None, *, now: datetime) -> datetime | None:
    """Pure: ``--before TIME`` (``restore db``, ``restore files``): an ISO 8601 time (UTC
    when it names no zone), not after ``now``; else a usage error (exit 2)."""
    if value is None:
        return None
    try:
        moment = parse_time(value)
    except (ValueError, OverflowError):  # 0001-01-01T00:00:00+01:00 overflows into UTC
        raise UsageError(
            f"--before {value!r} is not a time", hint="use ISO 8601, e.g. 2026-11-26T03:00:00Z"
        ) from None
    if moment > now:
        raise UsageError(f"--before {value} is in the future")
    return moment
