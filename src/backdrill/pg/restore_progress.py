"""pg_restore's progress: TOC entries restored, read from its ``--verbose`` stderr, out
of the entries ``pg_restore --list`` names.

One entry is one line: serially (``--jobs 1``) ``creating …``, ``processing data for
table …`` or ``executing …``; in parallel ``processing item N …`` (before and after the
parallel loop) or ``finished item N …``. Every other ``pg_restore:`` line without a
severity (``connecting to database``, ``launching item``, …) is chatter too; lines with
``error:``, ``warning:``, ``detail:``, ``hint:`` and lines without the prefix (``Command
was: …``) are not, so the error capture sees them as before."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from backdrill.pg.binaries import Program
from backdrill.pg.command import run
from backdrill.runtime.errors import PostgresError
from backdrill.runtime.progress import Advance

log = logging.getLogger(__name__)

_PREFIX = "pg_restore: "
_SEVERITIES = ("error:", "warning:", "detail:", "hint:", "fatal:")
_SERIAL_STEP = re.compile(r"(creating |processing data for table |executing )")
_PARALLEL_STEP = re.compile(r"(processing item |processing missed item |finished item )\d+ ")


def is_chatter(line: str) -> bool:
    """Pure: a ``--verbose`` information line (no error, warning or detail)."""
    if not line.startswith(_PREFIX):
        return False
    return not line[len(_PREFIX) :].lstrip().lower().startswith(_SEVERITIES)


def is_step(line: str, *, parallel: bool) -> bool:
    """Pure: the line says one TOC entry was restored."""
    rest = line[len(_PREFIX) :] if line.startswith(_PREFIX) else ""
    return bool((_PARALLEL_STEP if parallel else _SERIAL_STEP).match(rest))


class RestoreProgress:
    """Feeds on pg_restore's stderr lines (Child's ``chatter``), advancing by entry."""

    def __init__(self, *, parallel: bool, advance: Advance) -> None:
        self.parallel = parallel
        self.advance = advance
        self.steps = 0

    def feed(self, line: str) -> bool:
        if not is_chatter(line):
            return False
        if is_step(line, parallel=self.parallel):
            self.steps += 1
            self.advance(1)
        return True


def toc_entries(program: Program, dump: Path) -> int | None:
    """How many entries ``pg_restore --list`` names (None if it cannot tell: the
    restore itself will say what is wrong)."""
    try:
        listing = run([program.path, "--list", dump], what="pg_restore --list")
    except PostgresError as exc:  # the total is a nicety; the restore reports failures
        log.debug("no TOC count for the progress bar: %s", exc)
        return None
    count = sum(1 for ln in listing.splitlines() if ln.strip() and not ln.startswith(";"))
    return count or None
