"""Fill the duration table of the incident runbook from the last restore drill.

    backdrill drill history --json | python3 scripts/runbook_durations.py
    python3 scripts/runbook_durations.py --history history.json [RUNBOOK]

Reads ``drill history --json`` (a JSON array of drill reports), takes the newest drill
that measured an RTO, and rewrites the table between ``<!-- durations:begin -->`` and
``<!-- durations:end -->`` of the runbook (default docs/runbooks/incident-response.md).
Exit 1 (nothing written) when the history holds no drill with an RTO.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from backdrill.runtime.timeutil import human_duration, human_size

ROOT = Path(__file__).resolve().parent.parent
RUNBOOK = ROOT / "docs" / "runbooks" / "incident-response.md"
BEGIN = "<!-- durations:begin -->"
END = "<!-- durations:end -->"
MAX_HISTORY = 64 << 20  # bytes of history read at most
PHASES = (
    ("provision", "provision target", "creating an empty database"),
    ("download", "download", "network bound: storage to this host"),
    ("restore", "restore", "CPU bound: raise `--jobs` on a bigger host"),
    ("verify", "verify", "row counts, content digests and Odoo checks"),
)
SAFE = re.compile(r"[^A-Za-z0-9:+._-]")  # what a drill or backup id may show here


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value < 10**9 else None


def _text(value: Any) -> str:
    return SAFE.sub("?", str(value))[:64] if value is not None else "-"


def last_drill(reports: Any) -> dict[str, Any] | None:
    """The newest report (by started_at) whose RTO and phases are numbers."""
    if not isinstance(reports, list):
        raise ValueError("the history is not a JSON array (run `backdrill drill history --json`)")
    usable = []
    for report in reports:
        rto = report.get("rto") if isinstance(report, dict) else None
        phases = rto.get("phases") if isinstance(rto, dict) else None
        if not isinstance(phases, dict) or _seconds(rto.get("achieved_seconds")) is None:
            continue
        usable.append(report)
    return max(usable, key=lambda r: str(r.get("started_at", "")), default=None)


def durations_table(report: dict[str, Any]) -> str:
    """The markdown table (with its caption) of one drill's phases."""
    rto = report["rto"]
    phases = rto["phases"]
    backup = report.get("backup") if isinstance(report.get("backup"), dict) else {}
    raw = _seconds(backup.get("raw_size_bytes"))  # a size: the same bounds will do
    size = f", {human_size(raw)} dumped" if raw is not None else ""
    lines = [
        f"Last drill: `{_text(report.get('drill_id'))}` started "
        f"{_text(report.get('started_at'))}, result {_text(report.get('result'))}, backup "
        f"`{_text(backup.get('id'))}` of `{_text(backup.get('database'))}`{size}.",
        "",
        "| phase | last drill | notes |",
        "|---|---|---|",
    ]
    for key, name, note in PHASES:
        seconds = _seconds(phases.get(key))
        shown = human_duration(seconds) if seconds is not None else "not measured"
        lines.append(f"| {name} | {shown} | {note} |")
    total = _seconds(rto.get("achieved_seconds")) or 0.0
    target = _seconds(rto.get("target_seconds"))
    goal = f"target: {human_duration(target)}" if target is not None else "target: see the SSOT"
    lines.append(f"| **total (RTO)** | {human_duration(total)} | {goal} |")
    return "\n".join(lines)


def rewrite(text: str, table: str) -> str:
    """``text`` with the part between the markers replaced by ``table``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the runbook has no {BEGIN} ... {END} block")
    return f"{text[: start + len(BEGIN)]}\n{table}\n{text[end:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runbook", nargs="?", type=Path, default=RUNBOOK)
    parser.add_argument("--history", type=Path, help="drill history JSON (default: stdin)")
    args = parser.parse_args(argv)
    if args.history is not None:
        with args.history.open("rb") as fh:
            raw = fh.read(MAX_HISTORY + 1)
    else:
        raw = sys.stdin.buffer.read(MAX_HISTORY + 1)
    if len(raw) > MAX_HISTORY:
        print("runbook_durations: the history is larger than 64 MiB", file=sys.stderr)
        return 1
    try:
        report = last_drill(json.loads(raw))
    except (ValueError, UnicodeDecodeError) as exc:
        print(f"runbook_durations: {exc}", file=sys.stderr)
        return 1
    if report is None:
        print(
            "runbook_durations: no drill with an RTO yet: run `backdrill drill run`",
            file=sys.stderr,
        )
        return 1
    text = args.runbook.read_text(encoding="utf-8")
    args.runbook.write_text(rewrite(text, durations_table(report)), encoding="utf-8")
    print(f"runbook_durations: {args.runbook} now holds drill {_text(report.get('drill_id'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
