"""``backdrill drill run`` and ``backdrill drill history``."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from backdrill.cli.examples import example
from backdrill.cli.notify_hooks import notify_drill
from backdrill.cli.options import BackupOption, RestoreJobsOption, SourceOption
from backdrill.cli.render import print_json, table, warn
from backdrill.cli.state import AppState, state
from backdrill.config.sources import attempt_scope
from backdrill.repository.attempts import Attempt, new_attempt
from backdrill.runtime.errors import IntegrityError, UsageError
from backdrill.runtime.text import terminal
from backdrill.runtime.timeutil import human_duration, utcnow

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from backdrill.report.evidence import EvidenceLog
    from backdrill.services.drill import DrillOptions, DrillOutcome


class SandboxChoice(enum.StrEnum):
    local = "local"
    docker = "docker"
    server = "server"


def drill_run(
    ctx: typer.Context,
    backup: BackupOption = "latest",
    database: Annotated[
        str | None, typer.Option("--database", help="Drill this database's backups.")
    ] = None,
    source: SourceOption = None,
    sandbox: Annotated[
        SandboxChoice | None,
        typer.Option("--sandbox", help="local, docker or server (default: config)."),
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
    jobs: RestoreJobsOption = None,
    all_databases: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Drill the latest backup of every database; a report each and "
            "summary.json/summary.md.",
        ),
    ] = False,
    parallel: Annotated[
        int,
        typer.Option("--parallel", min=1, max=16, help="With --all: drills (sandboxes) at once."),
    ] = 1,
) -> None:
    """Restore a backup into a throwaway PostgreSQL, verify it, and write evidence."""
    from backdrill.services.drill import DrillOptions, run_drill

    app_state = state(ctx)
    options = DrillOptions(
        backup=backup,
        database=database,
        source=source,
        sandbox=sandbox.value if sandbox is not None else None,
        report_dir=report_dir,
        keep_sandbox=keep_sandbox,
        allow_newer=allow_newer,
        jobs=jobs,
    )
    if all_databases:
        _drill_all(app_state, options, parallel)
        return
    if parallel != 1:
        raise UsageError("--parallel runs several drills: use it with --all")
    # a drill that raises instead of writing a report could not start: recorded as an
    # attempt with result error (cli/attempt_record.py), no evidence report
    app_state.begin_attempt("drill-run", attempt_scope(database or "", source))
    outcome = run_drill(app_state.run_context(), options)
    _print_drill(app_state, outcome)
    notify_drill(app_state, outcome)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


def _drill_all(app_state: AppState, options: DrillOptions, parallel: int) -> None:
    from backdrill.cli.errors import report_error
    from backdrill.services.drill_all import (
        run_drill_all,
        summary_rows,
        worst_exit_code,
        write_summary,
    )

    if options.database is not None or options.backup != "latest":
        raise UsageError("--all drills the latest backup of every database: no --database/--backup")
    run = app_state.run_context()
    drills = run_drill_all(run, options, parallel)
    if not drills:
        raise UsageError("no backup to drill: run `backdrill backup db` first")
    for drill in drills:
        if drill.outcome is not None:
            _print_drill(app_state, drill.outcome)
            notify_drill(app_state, drill.outcome)
        else:
            name = attempt_scope(drill.database, drill.source)
            report_error(drill.error, prefix=f"drill of {name} failed: ")
    summary = write_summary(options.report_dir or run.config.drill.report_dir, drills)
    rows = [
        (
            str(r["source"]),
            str(r["database"]),
            str(r["drill_id"] or "-"),
            str(r["result"]),
            human_duration(float(str(r["rto_seconds"]))) if r["rto_seconds"] else "-",
            str(r["report"] or "-"),
        )
        for r in summary_rows(drills)
    ]
    out = app_state.out
    out.print(table("drills", ["source", "database", "drill", "result", "RTO", "report"], rows))
    out.print(f"summary: {summary} (and summary.md)")
    code = worst_exit_code(d.exit_code for d in drills)
    if code:
        failed = ", ".join(attempt_scope(d.database, d.source) for d in drills if d.exit_code)
        warn(f"backdrill: error: drills failed: {failed}")
        raise typer.Exit(code)


def _print_drill(app_state: AppState, outcome: DrillOutcome) -> None:
    r = outcome.report
    app_state.attempts.append(_drill_attempt(outcome, None))
    out = app_state.out
    out.print(f"drill {r.drill_id}: {r.result.upper()}")
    if r.backup is not None:
        out.print(
            f"  backup {r.backup.id} of {terminal(r.backup.database)}, source {r.backup.source}"
        )
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


def _drill_attempt(outcome: DrillOutcome, database: str | None) -> Attempt:
    r = outcome.report
    failed = next((c for c in r.checks if c.status == "fail"), None)
    error = r.error or (f"{failed.name}: {failed.detail}" if failed else None)
    return new_attempt(
        "drill-run",
        attempt_scope(r.backup.database, r.backup.source)
        if r.backup is not None
        else database or "",
        outcome.exit_code,
        utcnow(),
        result="ok" if r.result == "pass" else "failed",
        error=None if r.result == "pass" else error or "the drill failed",
        duration_seconds=r.rto.achieved_seconds if r.rto is not None else None,
    )


def drill_history(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Reports as a JSON array.")] = False,
    html: Annotated[Path | None, typer.Option("--html", help="Write an HTML page here.")] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Recompute the hash chain and the digests of report.md and report.html; "
            "exit 4 naming the drill and the file.",
        ),
    ] = False,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="With --verify: every report must carry a valid signature of this "
            "Ed25519 key (PEM, raw 32 bytes or the base64 printed in the reports).",
        ),
    ] = None,
) -> None:
    """Past drills: date, backup, RPO, RTO, result."""
    from backdrill.report.evidence import load_evidence
    from backdrill.report.render import render_history_html

    app_state = state(ctx)
    if public_key is not None and not verify:
        raise UsageError("--public-key checks signatures: use it with --verify")
    trusted = None
    if public_key is not None:
        from backdrill.report.signing import load_public_key

        trusted = load_public_key(public_key)

    evidence = load_evidence(app_state.storage)
    reports = evidence.parsed()
    if as_json:
        print_json(app_state.out, [r.document() for r in reports])
    elif not reports:
        app_state.out.print("no drills yet: run `backdrill drill run`")
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
        _verify_history(app_state, evidence, trusted)


def _verify_history(
    app_state: AppState, evidence: EvidenceLog, trusted: Ed25519PublicKey | None
) -> None:
    from backdrill.report.evidence import verify_chain
    from backdrill.report.evidence_verify import (
        rendered_digests,
        verify_rendered,
        verify_signatures,
        verify_single_versions,
    )
    from backdrill.repository.layout import EVIDENCE_ROOT

    chain = verify_chain(evidence.reports)
    for p in chain:
        warn(f"broken link at drill {p.drill_id}: {p.detail}")
    files, unchecked = verify_rendered(
        evidence.reports, rendered_digests(app_state.storage, evidence)
    )
    signatures = verify_signatures(evidence.reports, trusted)
    storage = app_state.storage
    counts = storage.version_counts(EVIDENCE_ROOT) if storage.capabilities().object_lock else None
    rewritten = verify_single_versions(evidence, counts)
    for p in [*files, *signatures, *rewritten]:
        warn(f"drill {p.drill_id}: {p.file} {p.detail}")
    if unchecked:
        warn(
            f"{len(unchecked)} report(s) predate recorded digests of report.md and "
            f"report.html (only their report.json is checked): {', '.join(unchecked)}"
        )
    problems = [*chain, *files, *signatures, *rewritten]
    if problems:
        named = sorted({f"{p.drill_id} ({p.file})" for p in problems})
        raise IntegrityError(
            f"the evidence does not verify at {len(problems)} place(s): "
            + terminal(", ".join(named))
        )
    signed = ", signed by the given key" if trusted is not None else ""
    once = ", each written once (object lock keeps versions)" if counts is not None else ""
    app_state.out.print(
        f"evidence chain verified: {len(evidence.reports)} report(s) intact "
        f"(report.json, report.md, report.html){signed}{once}"
    )


def drill_keygen(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", help="Private key file to create (mode 0600); FILE.pub too.")
    ],
) -> None:
    """Make an Ed25519 key to sign drill reports (drill.signing_key_file)."""
    from backdrill.report.signing import write_new_key

    text = write_new_key(out)
    console = state(ctx).out
    console.print(f"private key: {out} (set drill.signing_key_file to it; keep it secret)")
    console.print(f"public key: {out}.pub (give it to `drill history --verify --public-key`)")
    console.print(f"public key (as printed in the reports): {text}")


def register(parent: typer.Typer) -> None:
    """Attach the commands of this module to ``parent`` (app.py builds the tree)."""
    parent.command("run", epilog=example("drill run"))(drill_run)
    parent.command("history", epilog=example("drill history"))(drill_history)
    parent.command("keygen", epilog=example("drill keygen"))(drill_keygen)
