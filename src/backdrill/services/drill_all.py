"""``drill run --all``: the latest backup of every database in the repository drilled,
one after the other or ``parallel`` at once, each with its own report (chained in the
evidence in their ids' order), plus one
summary (``summary.json`` and ``summary.md`` in the report directory)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from backdrill.repository.catalog import list_db_backups
from backdrill.repository.layout import DEFAULT_SOURCE
from backdrill.runtime.errors import BackdrillError, IntegrityError
from backdrill.runtime.text import markdown
from backdrill.services.context import RunContext
from backdrill.services.drill import (
    DrillOptions,
    DrillOutcome,
    UnrecordedDrill,
    drill_unrecorded,
    record_drill,
    run_drill,
)
from backdrill.services.parallel import run_bounded

SUMMARY_NAMES = ("summary.json", "summary.md")


@dataclass(frozen=True)
class DatabaseDrill:
    """One database's drill: its outcome (a written report), or the error that came
    before any report (no readable backup, a sandbox that cannot be opened)."""

    database: str
    outcome: DrillOutcome | None
    error: BackdrillError | None
    source: str = DEFAULT_SOURCE

    @property
    def exit_code(self) -> int:
        if self.outcome is not None:
            return self.outcome.exit_code
        assert self.error is not None
        return self.error.exit_code


def worst_exit_code(codes: Iterable[int]) -> int:
    """Pure: 0 when every drill passed; an integrity error (4) before anything else,
    then the highest code."""
    failed = [c for c in codes if c != 0]
    if not failed:
        return 0
    return IntegrityError.exit_code if IntegrityError.exit_code in failed else max(failed)


def drilled_databases(ctx: RunContext, source: str | None = None) -> list[tuple[str, str]]:
    """(source, database) of every database the repository holds a committed backup
    of (of ``source``, None: of every source)."""
    return list_db_backups(ctx.storage, source=source).groups()


def run_drill_all(ctx: RunContext, options: DrillOptions, parallel: int) -> list[DatabaseDrill]:
    """One after the other, each drill's report is written as it ends. In parallel, the
    reports are written once all drills ended, in their ids' order: the evidence chain
    links each report to the one before it in that order (evidence.verify_chain)."""
    groups = drilled_databases(ctx, options.source)
    if parallel <= 1:
        return [_drill_one(ctx, options, group) for group in groups]

    def unrecorded(group: tuple[str, str]) -> UnrecordedDrill | BackdrillError:
        try:
            return drill_unrecorded(ctx, replace(options, source=group[0], database=group[1]))
        except BackdrillError as exc:
            return exc

    done = dict(zip(groups, run_bounded(groups, parallel, unrecorded), strict=True))
    outcomes: dict[tuple[str, str], DatabaseDrill] = {}
    drilled = [(g, r) for g, r in done.items() if isinstance(r, UnrecordedDrill)]
    for (src, database), result in sorted(drilled, key=lambda gr: gr[1].report.drill_id):
        try:
            outcome = record_drill(ctx, options, result)
        except BackdrillError as exc:
            outcomes[src, database] = DatabaseDrill(database, None, exc, src)
        else:
            outcomes[src, database] = DatabaseDrill(database, outcome, None, src)
    for (src, database), failed in done.items():
        if isinstance(failed, BackdrillError):
            outcomes[src, database] = DatabaseDrill(database, None, failed, src)
    return [outcomes[group] for group in groups]


def _drill_one(ctx: RunContext, options: DrillOptions, group: tuple[str, str]) -> DatabaseDrill:
    src, database = group
    try:
        outcome = run_drill(ctx, replace(options, source=src, database=database))
    except BackdrillError as exc:
        return DatabaseDrill(database, None, exc, src)
    return DatabaseDrill(database, outcome, None, src)


def summary_rows(drills: list[DatabaseDrill]) -> list[dict[str, object]]:
    """Pure: one row per database, in the summary files and as printed."""
    rows: list[dict[str, object]] = []
    for d in drills:
        o = d.outcome
        rows.append(
            {
                "source": d.source,
                "database": d.database,
                "drill_id": o.report.drill_id if o else None,
                "backup_id": o.report.backup.id if o and o.report.backup else None,
                "result": o.report.result if o else "error",
                "rto_seconds": o.report.rto.achieved_seconds if o and o.report.rto else None,
                "report": str(o.report_dir / "report.html") if o else None,
                "exit_code": d.exit_code,
                "error": str(d.error) if d.error else None,
            }
        )
    return rows


def summary_markdown(rows: list[dict[str, object]], exit_code: int) -> str:
    """Pure: the summary as a Markdown table; every value escaped."""
    lines = [
        "# Restore drills of every database",
        "",
        f"{len(rows)} database(s), exit code {exit_code}.",
        "",
        "| source | database | drill | result | RTO (s) | report |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [
            r["source"],
            r["database"],
            r["drill_id"] or "-",
            r["result"],
            r["rto_seconds"] or "-",
        ]
        cells.append(r["report"] or r["error"] or "-")
        lines.append("| " + " | ".join(markdown(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(report_root: Path, drills: list[DatabaseDrill]) -> Path:
    """``summary.json`` and ``summary.md`` in ``report_root``; the path of the first."""
    rows = summary_rows(drills)
    code = worst_exit_code(d.exit_code for d in drills)
    report_root.mkdir(parents=True, exist_ok=True)
    document = {"exit_code": code, "drills": rows}
    target = report_root / SUMMARY_NAMES[0]
    target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    (report_root / SUMMARY_NAMES[1]).write_text(summary_markdown(rows, code), encoding="utf-8")
    return target
