"""Printing an expected error: one line on stderr per problem, or one JSON log record."""

from __future__ import annotations

import logging
import sys

from backdrill.runtime.errors import BackdrillError, Interrupted
from backdrill.runtime.logs import JsonFormatter
from backdrill.runtime.redact import SECRETS
from backdrill.runtime.text import terminal

log = logging.getLogger("backdrill")


def _json_logging() -> bool:
    return any(isinstance(h.formatter, JsonFormatter) for h in log.handlers)


def report_error(exc: BackdrillError | None, *, prefix: str = "") -> None:
    if exc is None:
        return
    text = SECRETS.redact(f"{prefix}{exc}")
    if _json_logging():
        log.error(text, extra={"fields": {"exit_code": exc.exit_code, "error": type(exc).__name__}})
    else:  # a config error names every problem, one line each
        for line in text.splitlines() or [""]:
            print(f"backdrill: error: {terminal(line)}", file=sys.stderr)


def report_interrupt(exc: Interrupted) -> None:
    text = f"{exc} (cleaned up)"
    if _json_logging():
        log.error(text, extra={"fields": {"exit_code": exc.exit_code, "error": "Interrupted"}})
    else:
        print(f"backdrill: {terminal(text)}", file=sys.stderr)
