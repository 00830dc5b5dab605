"""``backdrill status``: freshness against the targets, with Nagios exit codes
(0 OK, 1 WARNING, 2 CRITICAL), an exception to the general exit-code table."""

from __future__ import annotations

from typing import Annotated

import typer

from backdrill.cli.examples import example
from backdrill.cli.render import print_json, table
from backdrill.cli.state import state
from backdrill.policy.ssot import policy
from backdrill.runtime.timeutil import human_duration
from backdrill.services.status import check_repository


def status_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="The checks as JSON.")] = False,
) -> None:
    """Age of the last backup, snapshot and passed drill vs their targets (Nagios codes)."""
    app_state = state(ctx)
    report, _facts = check_repository(app_state.storage, app_state.config)
    if as_json:
        p = policy(app_state.config)
        doc = report.to_dict()
        doc["repository"] = app_state.storage.url
        doc["policy"] = {
            "source": p.source,
            "rpo_seconds": p.rpo_hours * 3600,
            "rto_seconds": p.rto_hours * 3600,
            "drill_max_age_seconds": p.drill_max_age_days * 86400,
            "warning_fraction": p.warning_fraction,
        }
        print_json(app_state.out, doc)
    else:
        app_state.out.print(report.summary())
        rows = [
            (
                c.state.name,
                c.name,
                human_duration(c.age_seconds) if c.age_seconds is not None else "-",
                human_duration(c.target_seconds) if c.target_seconds is not None else "-",
                c.detail,
            )
            for c in report.checks
        ]
        if rows:
            app_state.out.print(table(None, ["state", "check", "age", "target", "detail"], rows))
    raise typer.Exit(report.exit_code)


def register(parent: typer.Typer) -> None:
    """Attach the commands of this module to ``parent`` (app.py builds the tree)."""
    parent.command("status", epilog=example("status"))(status_cmd)
