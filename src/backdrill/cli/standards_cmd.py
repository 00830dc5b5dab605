"""``backdrill standards check``: the design map's enterprise-standards validation.

Needs no backdrill configuration: it checks a repository checkout (``--root``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backdrill.cli.examples import example
from backdrill.cli.render import table, warn
from backdrill.cli.state import state


def check(
    ctx: typer.Context,
    root: Annotated[
        Path, typer.Option("--root", help="Repository checkout to check (default: cwd).")
    ] = Path(),
) -> None:
    """Required SSOT files, valid YAML, 9 domains with stack and owners, runbooks."""
    from backdrill.policy.schedules import check_schedules
    from backdrill.policy.standards import run_standards_check

    out = state(ctx).out
    report = run_standards_check(root, extra=(check_schedules,))
    rows = [("ok" if f.ok else "FAIL", f.check, f.detail) for f in report.findings]
    out.print(
        table(f"enterprise standards of {root.resolve()}", ["status", "check", "detail"], rows)
    )
    if not report.ok:
        for failure in report.failures:
            warn(f"backdrill: standards: {failure.check}: {failure.detail}")
        out.print(f"{len(report.failures)} check(s) failed")
        raise typer.Exit(1)
    out.print("all enterprise-standards checks passed")


def register(parent: typer.Typer) -> None:
    """Attach the commands of this module to ``parent`` (app.py builds the tree)."""
    parent.command("check", epilog=example("standards check"))(check)
