"""``backdrill drill run`` and ``backdrill drill history``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from backdrill.attempts import Attempt, new_attempt
from backdrill.cli.notify_hooks import notify_drill
from backdrill.cli.render import print_json, table, warn
from backdrill.cli.state import state
from backdrill.errors import IntegrityError
from backdrill.timeutil import human_duration, utcnow

if TYPE_CHECKING:
    from backdrill.services.drill import DrillOutcome

app = typer.Typer(
    help="Restore drills: prove the backups restore and meet RPO/RTO.", no_args_is_help=True
)


@app.command("run")
def drill_run(
    ctx: typer.Context,
    backup: Annotated[str, typer.Option("--backup", help="Backup id or 'latest'.")] = "latest",
    database: Annotated[
        str | None, typer.Option("--database", help="Drill this database's backups.")
    ] = None,
    sandbox: Annotated[
        str | None, typer.Option("--sandbox", help="local, docker or server (default: config).")
    ] = None,
    report_dir: Annotated[
        Path | None, typer.Option("--report-dir", help="Where to write the reports.")
    ] = None,
    keep_sandbox: Annotated[
        bool,
        typer.Option("--keep-sandbox", help="Leave the sandbox running; print how to connect."),
    ] = False,
    allow_newer: Annotated[
        bool, typer.Option("--allow-newer", help="Restore into a newer PostgreSQL major if needed.")
    ] = False,
    jobs: Annotated[int | None, typer.Option("--jobs", min=1, help="pg_restore jobs.")] = None,
) -> None:
    """Restore a backup into a throwaway PostgreSQL, verify it, and write evidence."""
    from backdrill.services.drill import DrillOptions, run_drill

    app_state = state(ctx)
    # a drill that raises instead of writing a report could not start: recorded as an
    # attempt with result error (cli/attempt_record.py), no evidence report
    app_state.begin_attempt("drill-run", database or "")
    outcome = run_drill(
        app_state.run_context(),
        DrillOptions(
            backup=backup,
            database=database,
            sandbox=sandbox,
            report_dir=report_dir,
            keep_sandbox=keep_sandbox,
            allow_newer=allow_newer,
            jobs=jobs,
        ),
    )
    r = outcome.report
    app_state.attempts.append(_drill_attempt(outcome, database))
    out = app_state.out
    out.print(f"drill {r.drill_id}: {r.result.upper()}")
    if r.rpo and r.rto:
        out.print(
            f"  RPO {human_duration(r.rpo.achieved_seconds)} (target "
            f"{human_duration(r.rpo.target_seconds)}, {'met' if r.rpo.met else 'MISSED'}); "
            f"RTO {human_duration(r.rto.achieved_seconds)} (target "
            f"{human_duration(r.rto.target_seconds)}, {'met' if r.rto.met else 'MISSED'})"
        )
        phases = ", ".join(f"{k} {human_duration(v)}" for k, v in r.rto.phases.items())
        out.print(f"  phases: {phases}")
    label = {"pass": "ok    ", "fail": "FAILED", "skip": "skip  "}
    for check in r.checks:
        out.print(f"  {label[check.status]} {check.name}: {check.detail}")
    out.print(f"  report: {outcome.report_dir / 'report.html'}")
    if outcome.keep_hint:
        out.print(f"  sandbox kept: {outcome.keep_hint}")
    notify_drill(app_state, outcome)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


def _drill_attempt(outcome: DrillOutcome, database: str | None) -> Attempt:
    r = outcome.report
    failed = next((c for c in r.checks if c.status == "fail"), None)
    error = r.error or (f"{failed.name}: {failed.detail}" if failed else None)
    return new_attempt(
        "drill-run",
        r.backup.database if r.backup is not None else database or "",
        outcome.exit_code,
        utcnow(),
        result="ok" if r.result == "pass" else "failed",
        error=None if r.result == "pass" else error or "the drill failed",
        duration_seconds=r.rto.achieved_seconds if r.rto is not None else None,
    )


@app.command("history")
def drill_history(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Reports as a JSON array.")] = False,
    html: Annotated[Path | None, typer.Option("--html", help="Write an HTML page here.")] = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="Recompute the hash chain; exit 4 if broken.")
    ] = False,
) -> None:
    """Past drills: date, backup, RPO, RTO, result."""
    from backdrill.evidence import load_evidence, verify_chain
    from backdrill.report.render import render_history_html

    app_state = state(ctx)

    evidence = load_evidence(app_state.storage)
    reports = evidence.parsed()
    if as_json:
        print_json(app_state.out, [r.document() for r in reports])
    else:
        rows = [
            (
                r.started_at.strftime("%Y-%m-%d %H:%M"),
                r.drill_id,
                r.backup.id if r.backup else "-",
                human_duration(r.rpo.achieved_seconds) if r.rpo else "-",
                human_duration(r.rto.achieved_seconds) if r.rto else "-",
                r.result,
            )
            for r in reports
        ]
        app_state.out.print(
            table("restore drills", ["date", "drill", "backup", "RPO", "RTO", "result"], rows)
        )
    if html is not None:
        html.write_text(render_history_html(reports), encoding="utf-8")
        app_state.out.print(f"history page: {html}")
    if verify:
        problems = verify_chain(evidence.reports)
        if problems:
            for p in problems:
                warn(f"broken link at drill {p.drill_id}: {p.detail}")
            raise IntegrityError(
                f"the evidence chain is broken at {len(problems)} place(s): "
                + ", ".join(p.drill_id for p in problems)
            )
        app_state.out.print(f"evidence chain verified: {len(evidence.reports)} report(s) intact")
