"""``pg_restore`` into a database: parallel jobs, stop at the first error, and the
error text kept for the report."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from backdrill.pg.binaries import Program
from backdrill.pg.command import Child
from backdrill.pg.connection import ConnParams
from backdrill.pg.restore_progress import RestoreProgress, toc_entries
from backdrill.runtime.errors import PostgresError
from backdrill.runtime.progress import NullReporter, Reporter

log = logging.getLogger(__name__)


def default_jobs(configured: int | str = "auto") -> int:
    if isinstance(configured, int):
        return configured
    return max(1, os.cpu_count() or 1)


def dbname_conninfo(name: str) -> str:
    """``dbname='…'`` so that any database name is taken literally (never as a URL or
    a connection string); the rest of the connection comes from the environment."""
    escaped = name.replace("\\", "\\\\").replace("'", "\\'")
    return f"dbname='{escaped}'"


@dataclass(frozen=True)
class RestoreOptions:
    """Owners, grants and policies are restored unless asked not to; tablespaces are
    not (a sandbox or a new server rarely has the source's)."""

    jobs: int
    no_owner: bool = False
    no_privileges: bool = False
    no_tablespaces: bool = True


class RestoreFailed(PostgresError):
    """pg_restore reported errors; ``errors`` holds their text."""

    def __init__(self, message: str, errors: list[str]) -> None:
        super().__init__(message)
        self.errors = errors


def pg_restore(
    program: Program,
    dump: Path,
    target: ConnParams,
    options: RestoreOptions,
    reporter: Reporter | None = None,
) -> None:
    """Restore ``dump`` into the existing database of ``target``; with a live
    ``reporter``, show TOC entries restored out of the archive's (restore_progress.py)."""
    reporter = reporter or NullReporter()
    total = toc_entries(program, dump) if reporter.live else None
    argv: list[str | Path] = [
        program.path,
        f"--jobs={options.jobs}",
        "--verbose",  # one line per TOC entry: the progress (never an error line)
        "--exit-on-error",
        "--no-password",
        f"--dbname={dbname_conninfo(target.dbname)}",
    ]
    if options.no_owner:
        argv.append("--no-owner")
    if options.no_privileges:
        argv.append("--no-privileges")
    if options.no_tablespaces:
        argv.append("--no-tablespaces")
    argv.append(dump)
    env = target.child_env()
    started = time.monotonic()
    with (
        reporter.task(f"restore {target.dbname} (pg_restore)", total, unit="items") as advance,
        Child(
            argv,
            env=env,
            stdout=subprocess.DEVNULL,
            what="pg_restore",
            chatter=RestoreProgress(parallel=options.jobs > 1, advance=advance).feed,
        ) as child,
    ):
        code = child.wait()
        if code != 0:
            errors = child.error_lines or child.stderr_text(20).splitlines()
            raise RestoreFailed(child.failure_message(code), errors)
    seconds = round(time.monotonic() - started, 3)
    log.info("pg_restore finished in %.1f s", seconds, extra={"fields": {"seconds": seconds}})
