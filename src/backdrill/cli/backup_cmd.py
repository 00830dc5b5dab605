"""``backdrill backup db`` (and, later, ``backup files``)."""

from __future__ import annotations

from typing import Annotated

import typer

from backdrill.cli.errors import report_error
from backdrill.cli.notify_hooks import notify_backup
from backdrill.cli.options import parse_wait
from backdrill.cli.state import state
from backdrill.errors import BackdrillError, Interrupted
from backdrill.services.backup_db import run_backup_db
from backdrill.timeutil import human_duration, human_size

app = typer.Typer(
    help="Run a backup (from cron: db at 03:00 UTC, files at 04:00 UTC).", no_args_is_help=True
)


@app.command("db")
def backup_db(
    ctx: typer.Context,
    database: Annotated[
        str | None, typer.Option("--database", "-d", help="Back up this database.")
    ] = None,
    all_databases: Annotated[
        bool, typer.Option("--all", help="Every connectable non-template database, and roles.")
    ] = False,
    wait: Annotated[
        str | None,
        typer.Option("--wait", metavar="DURATION", help="Wait this long for a held lock (15m)."),
    ] = None,
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
) -> None:
    """pg_dump -> zstd -> sha256 -> storage; the manifest is written last."""
    app_state = state(ctx)
    run, wait_for = app_state.run_context(), parse_wait(wait)
    try:
        outcomes = run_backup_db(
            run, database=database, all_databases=all_databases, wait=wait_for, jobs=jobs
        )
    except (BackdrillError, Interrupted) as exc:
        notify_backup(app_state, run.host, database, None, exc)
        raise
    for outcome in outcomes:
        m = outcome.manifest
        if m is not None:
            seconds = (m.finished_at - m.started_at).total_seconds()
            app_state.out.print(
                f"committed backup {m.id} of {m.database}: {human_size(m.stored_size)} stored "
                f"({human_size(m.raw_size)} dumped, {len(m.tables)} tables) "
                f"in {human_duration(seconds)}"
            )
    for outcome in outcomes:
        notify_backup(app_state, run.host, outcome.database, outcome.manifest, outcome.error)
    failures = [o for o in outcomes if o.error is not None]
    if failures:
        first = failures[0].error
        assert first is not None
        if len(outcomes) == 1:
            raise first
        for failed in failures:
            report_error(failed.error, prefix=f"backup of {failed.database} failed: ")
        names = ", ".join(o.database for o in failures)
        typer.echo(
            f"backdrill: error: {len(failures)} of {len(outcomes)} backups failed: {names}",
            err=True,
        )
        raise typer.Exit(first.exit_code)
