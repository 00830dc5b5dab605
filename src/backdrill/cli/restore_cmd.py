"""``backdrill restore db`` and ``backdrill restore files``."""

from __future__ import annotations

from typing import Annotated

import typer

from backdrill.cli.examples import example
from backdrill.cli.options import (
    BackupOption,
    BeforeOption,
    RestoreJobsOption,
    SourceOption,
    parse_before,
)
from backdrill.cli.state import state
from backdrill.runtime.timeutil import human_duration, utcnow


def restore_db(
    ctx: typer.Context,
    to: Annotated[
        str,
        typer.Option("--to", help="Target DSN (libpq string or URL); its dbname is the target."),
    ],
    backup: BackupOption = "latest",
    before: BeforeOption = None,
    database: Annotated[
        str | None, typer.Option("--database", help="Restore a backup of this database.")
    ] = None,
    source: SourceOption = None,
    jobs: RestoreJobsOption = None,
    neutralize: Annotated[
        bool, typer.Option("--neutralize", help="Neutralize the Odoo copy (no mail, no cron).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a non-empty target (kept, renamed aside).")
    ] = False,
    no_owner: Annotated[
        bool,
        typer.Option(
            "--no-owner", help="Do not restore ownership and privileges, nor create roles."
        ),
    ] = False,
    keep_tablespaces: Annotated[
        bool,
        typer.Option(
            "--keep-tablespaces",
            help="Restore objects into their tablespaces (the target must have them).",
        ),
    ] = False,
) -> None:
    """Restore a database backup into a real target: into a temporary database first,
    renamed into place only when the restore succeeded."""
    from backdrill.services.restore_db import (
        RestoreChoices,
        check_target,
        execute_restore,
        plan_restore,
    )
    from backdrill.services.restore_pipeline import created_roles_notice, tablespaces_notice

    moment = parse_before(before, now=utcnow())
    app_state = state(ctx)
    run = app_state.run_context()
    plan = plan_restore(
        run,
        to=to,
        backup=backup,
        before=moment,
        database=database,
        jobs=jobs,
        source=source,
    )
    check_target(plan, force=force)
    app_state.out.print(f"will {plan.describe()}")
    choices = RestoreChoices(force, neutralize, no_owner, keep_tablespaces)
    result = execute_restore(run, plan, choices)
    app_state.out.print(
        f"restored backup {plan.manifest.id} into {result.database} in "
        f"{human_duration(result.seconds)}; row counts match the manifest"
    )
    for notice in (
        created_roles_notice(result.created_roles),
        *(f"warning: {note}" for note in result.role_notes),
        tablespaces_notice(plan.manifest.database_properties, kept=keep_tablespaces),
    ):
        if notice:
            app_state.out.print(notice)
    if result.moved_aside:
        app_state.out.print(f"the previous database was kept as {result.moved_aside}")
    if result.neutralization:
        app_state.out.print(f"neutralized: {result.neutralization.describe()}")
    elif plan.manifest.odoo is not None:
        app_state.out.print(
            "warning: this Odoo copy is NOT neutralized: it will send e-mail and run crons "
            "if Odoo starts on it (use --neutralize for a copy)"
        )


def register(parent: typer.Typer) -> None:
    """Attach the commands of this module to ``parent`` (app.py builds the tree)."""
    parent.command("db", epilog=example("restore db"))(restore_db)
