"""``backdrill backup db`` and ``backdrill backup files``."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated
from urllib.parse import urlparse

import typer

from backdrill.cli.errors import report_error
from backdrill.cli.examples import example
from backdrill.cli.notify_hooks import notify_backup
from backdrill.cli.options import SourceOption, WaitOption, parse_wait
from backdrill.cli.render import warn
from backdrill.cli.state import AppState, state
from backdrill.config.sources import attempt_scope
from backdrill.repository.attempts import Attempt, new_attempt
from backdrill.runtime.errors import BackdrillError, GoalNotMet, Interrupted
from backdrill.runtime.timeutil import human_duration, human_size, utcnow
from backdrill.services.backup_db import DbBackupOutcome, run_backup_db
from backdrill.services.facts import source_name


def backup_db(
    ctx: typer.Context,
    database: Annotated[
        str | None, typer.Option("--database", "-d", help="Back up this database.")
    ] = None,
    all_databases: Annotated[
        bool, typer.Option("--all", help="Every connectable non-template database, and roles.")
    ] = False,
    source: SourceOption = None,
    wait: WaitOption = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            min=1,
            max=64,
            help="Parallel pg_dump jobs (directory format; each file uploaded as it "
            "completes). Default: backup -> jobs, 1.",
        ),
    ] = None,
    parallel: Annotated[
        int | None,
        typer.Option(
            "--parallel",
            min=1,
            max=16,
            help="Databases dumped at once, each with its own lock and manifest. "
            "Default: backup -> parallel, 1.",
        ),
    ] = None,
) -> None:
    """pg_dump -> zstd -> sha256 -> storage; the manifest is written last."""

    app_state = state(ctx)
    app_state.begin_attempt("backup-db", attempt_scope(database or "", source))
    run, wait_for = app_state.run_context(), parse_wait(wait)
    try:
        outcomes = run_backup_db(
            run,
            source=source,
            database=database,
            all_databases=all_databases,
            wait=wait_for,
            jobs=jobs,
            parallel=parallel,
        )
    except (BackdrillError, Interrupted) as exc:
        notify_backup(app_state, run.host, database, None, exc)
        raise
    for outcome in outcomes:
        m = outcome.manifest
        if m is not None:
            seconds = (m.finished_at - m.started_at).total_seconds()
            name = attempt_scope(m.database, m.source)
            app_state.out.print(
                f"committed backup {m.id} of {name}: {human_size(m.stored_size)} stored "
                f"({human_size(m.raw_size)} dumped, {len(m.tables)} tables) "
                f"in {human_duration(seconds)}"
            )
    app_state.attempts.extend(_db_attempt(o) for o in outcomes)
    for outcome in outcomes:
        name = _label(outcome)
        notify_backup(app_state, run.host, name, outcome.manifest, outcome.error)
    failures = [o for o in outcomes if o.error is not None]
    if failures:
        first = failures[0].error
        assert first is not None
        if len(outcomes) == 1:
            raise first
        for failed in failures:
            name = _label(failed)
            report_error(failed.error, prefix=f"backup of {name} failed: ")
        names = ", ".join(_label(o) for o in failures)
        warn(f"backdrill: error: {len(failures)} of {len(outcomes)} backups failed: {names}")
        raise typer.Exit(first.exit_code)


def _label(outcome: DbBackupOutcome) -> str:
    """``odoo``, ``supabase/postgres``; a source whose databases could not be listed:
    ``source supabase``."""
    if not outcome.database:
        return f"source {outcome.source}"
    return attempt_scope(outcome.database, outcome.source)


def _db_attempt(outcome: DbBackupOutcome) -> Attempt:
    m = outcome.manifest
    scope = attempt_scope(outcome.database, outcome.source)
    if outcome.error is not None or m is None:
        code = outcome.error.exit_code if outcome.error is not None else 1
        error = str(outcome.error) if outcome.error is not None else "no backup committed"
        return new_attempt("backup-db", scope, code, utcnow(), error=error)
    return new_attempt(
        "backup-db",
        scope,
        0,
        m.finished_at,
        duration_seconds=(m.finished_at - m.started_at).total_seconds(),
        size_bytes=m.stored_size,
    )


def _files_scope(app_state: AppState, source: str | None) -> str:
    """The source name a run of ``backup files`` records its attempt under."""
    try:
        config = app_state.config
    except BackdrillError:
        return source or ""
    if source is None or source == config.files.source:
        return source_name(config) or ""
    parsed = urlparse(source)
    if parsed.scheme == "s3":
        return PurePosixPath(parsed.path.strip("/")).name or parsed.netloc
    return PurePosixPath(source.rstrip("/")).name


def backup_files(
    ctx: typer.Context,
    source: Annotated[
        str | None,
        typer.Option(
            "--source", help="A directory or s3://bucket/prefix (default: files -> source)."
        ),
    ] = None,
    rehash: Annotated[
        bool, typer.Option("--rehash", help="Read every file, even those unchanged.")
    ] = False,
    wait: WaitOption = None,
) -> None:
    """Content-addressed, incremental snapshot of the filestore; written last."""
    from backdrill.services.backup_files import run_backup_files

    app_state = state(ctx)
    app_state.begin_attempt("backup-files", _files_scope(app_state, source))
    result = run_backup_files(
        app_state.run_context(), source=source, rehash=rehash, wait=parse_wait(wait)
    )
    s = result.snapshot
    if not result.unreadable_count:
        app_state.attempts.append(
            new_attempt(
                "backup-files",
                s.source_name,
                0,
                s.finished_at,
                duration_seconds=(s.finished_at - s.created_at).total_seconds(),
                size_bytes=s.total_bytes,
            )
        )
    seconds = (s.finished_at - s.created_at).total_seconds()
    app_state.out.print(
        f"committed snapshot {s.id} of {s.source_name}: {s.file_count} files, "
        f"{human_size(s.total_bytes)}; {s.files_read} read, {result.reused} unchanged; "
        f"{s.new_objects} new objects, {human_size(s.uploaded_bytes)} uploaded "
        f"in {human_duration(seconds)}"
    )
    if s.changed_count or s.skipped_count:
        app_state.out.print(
            f"warning: {s.changed_count} file(s) changed during the backup, "
            f"{s.skipped_count} skipped (see `backdrill show {s.id}`)"
        )
    if result.unreadable_count:
        raise GoalNotMet(
            f"snapshot {s.id} is incomplete: {result.unreadable_count} entries could not be "
            f"read, first {result.unreadable[0].path} ({result.unreadable[0].reason})",
            hint="fix the permissions of the filestore for the backup user",
        )


def register(parent: typer.Typer) -> None:
    """Attach the commands of this module to ``parent`` (app.py builds the tree)."""
    parent.command("db", epilog=example("backup db"))(backup_db)
    parent.command("files", epilog=example("backup files"))(backup_files)
