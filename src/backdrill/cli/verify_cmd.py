"""``backdrill verify``: integrity without restoring. Dispatches on the kind of the id:
database backups (found in the db catalogue) here; filestore snapshots plug in beside."""

from __future__ import annotations

from typing import Annotated

import typer

from backdrill.catalog import list_db_backups
from backdrill.cli.render import table
from backdrill.cli.state import state
from backdrill.errors import IntegrityError, NotFound, UsageError
from backdrill.services.verify_db import VerifyResult, run_verify_db


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_cmd)


def verify_cmd(
    ctx: typer.Context,
    backup_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="A backup id (see `list`).")
    ] = None,
    all_backups: Annotated[bool, typer.Option("--all", help="Every backup.")] = False,
    read_data: Annotated[
        bool,
        typer.Option("--read-data", help="Download, check sha256, run pg_restore --list."),
    ] = False,
) -> None:
    """Check backups without restoring; exit 4 naming every failing one."""
    if (backup_id is None) == (not all_backups):
        raise UsageError("give either an ID or --all")
    app_state = state(ctx)
    run_ctx = app_state.run_context()
    listing = list_db_backups(app_state.storage)
    results: list[VerifyResult] = []
    if all_backups:
        results += run_verify_db(run_ctx, None, read_data=read_data, listing=listing)
    elif any(m.id == backup_id for m in listing.backups):
        results += run_verify_db(run_ctx, backup_id, read_data=read_data, listing=listing)
    else:
        raise NotFound(f"no backup with id {backup_id}", hint="see `backdrill list`")
    rows = [
        (r.id, r.target, "ok" if r.ok else "FAIL", "; ".join(r.problems or r.checks))
        for r in results
    ]
    app_state.out.print(table("backdrill verify", ["id", "of", "status", "detail"], rows))
    failed = [r for r in results if not r.ok]
    if failed:
        names = "; ".join(f"{r.id} ({r.problems[0]})" for r in failed)
        raise IntegrityError(
            f"{len(failed)} of {len(results)} backups failed verification: {names}"
        )
    app_state.out.print(f"{len(results)} backup(s) verified")
