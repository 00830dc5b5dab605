"""Logging: one JSON object per line (``--log-format json``) or readable text.

Every record carries the run id (a correlation id) and may carry structured fields,
passed as ``log.info("msg", extra={"fields": {...}})``. Every rendered line goes
through the secret redactor last, so a secret that slipped into a message is masked.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from backdrill.runtime.redact import SECRETS
from backdrill.runtime.text import json_line, terminal

LogFormat = Literal["text", "json"]

_STD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


class _RunIdFilter(logging.Filter):
    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = self.run_id
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "run_id": getattr(record, "run_id", None),
        }
        doc.update(_fields(record))
        if record.exc_info:
            doc["traceback"] = self.formatException(record.exc_info)
        return SECRETS.redact(json_line(json.dumps(doc, default=str, ensure_ascii=False)))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        extra = " ".join(f"{k}={terminal(str(v))}" for k, v in _fields(record).items())
        line = f"{stamp} {record.levelname.lower():7} {terminal(record.getMessage())}"
        if extra:
            line = f"{line}  {extra}"
        if record.exc_info:
            trace = self.formatException(record.exc_info).splitlines()
            line = "\n".join([line, *(terminal(t) for t in trace)])
        return SECRETS.redact(line)


class CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is at each record, not as it was at set-up: while a
    progress bar is live, rich replaces it with a proxy that prints each line above the
    bar, so a log line is never glued to a bar fragment."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def default_format() -> LogFormat:
    return "text" if sys.stderr.isatty() else "json"


def setup_logging(fmt: LogFormat, run_id: str, *, debug: bool = False) -> None:
    root = logging.getLogger("backdrill")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = CurrentStderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_RunIdFilter(run_id))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
