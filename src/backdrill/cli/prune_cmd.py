"""``backdrill prune``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from backdrill.cli.examples import example
from backdrill.cli.options import WaitOption, parse_wait
from backdrill.cli.render import print_json, table
from backdrill.cli.state import state
from backdrill.runtime.timeutil import human_size

if TYPE_CHECKING:
    from backdrill.services.prune_report import PruneReport


def prune_cmd(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be deleted; delete nothing.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Kept, deleted, locked and orphans as JSON.")
    ] = False,
    wait: WaitOption = None,
) -> None:
    """Apply retention (days, min_keep, GFS) and remove orphans older than the grace period."""
    app_state = state(ctx)
    from backdrill.services.prune import run_prune

    report = run_prune(app_state.run_context(), dry_run=dry_run, wait=parse_wait(wait))
    if as_json:
        print_json(app_state.out, report.to_dict())
        return
    render(app_state.out, report)


def render(out: Console, report: PruneReport) -> None:
    verb = "would delete" if report.dry_run else "deleted"
    rows = [
        (
            e.scope,
            e.id,
            e.created_at.strftime("%Y-%m-%d %H:%M:%SZ"),
            verb if e.action == "delete" else e.action,
            e.rule,
            human_size(e.bytes),
        )
        for e in report.entries
    ]
    out.print(table("prune", ["scope", "id", "created", "action", "rule", "size"], rows))
    if report.orphans:
        orphan_rows = [
            (o.kind, o.key, verb if o.action == "delete" else o.action, human_size(o.bytes))
            for o in report.orphans
        ]
        out.print(table("orphans", ["kind", "key", "action", "size"], orphan_rows))
    for scope, reason in report.skipped_scopes.items():
        out.print(f"skipped {scope}: {reason}")
    for line in report.locked:
        out.print(f"kept under object lock: {line}")
    if report.young_unreferenced:
        out.print(
            f"{report.young_unreferenced} unreferenced filestore object(s) younger than the "
            "grace period kept"
        )
    out.print(f"{verb} {human_size(report.bytes_freed)} ({report.bytes_freed} bytes)")


def register(parent: typer.Typer) -> None:
    """Attach the commands of this module to ``parent`` (app.py builds the tree)."""
    parent.command("prune", epilog=example("prune"))(prune_cmd)
