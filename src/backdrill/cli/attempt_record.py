"""After a command that records its attempts (``backup db``, ``backup files``, ``drill
run``): write the outcomes it recorded (one per database), and one record of the scope
it was asked for (the run as a whole) with the exit code and the error line. Best
effort: never fails the command."""

from __future__ import annotations

import logging
import time

from backdrill.cli.state import AppState
from backdrill.repository.attempts import error_line, new_attempt, record_all
from backdrill.runtime.errors import BackdrillError
from backdrill.runtime.timeutil import utcnow
from backdrill.storage import open_probe_storage

log = logging.getLogger("backdrill")


def record_attempts(app_state: AppState, exit_code: int, error: str | None) -> None:
    if app_state.attempt_scope is None and not app_state.attempts:
        return
    attempts = list(app_state.attempts)
    if app_state.attempt_scope is not None:
        command, scope = app_state.attempt_scope
        if all((a.command, a.scope) != (command, scope) for a in attempts):
            # the run as a whole (``backup db --all``: scope ""), so that a failure of the
            # whole run is replaced by the next run's outcome
            failed = next((a for a in attempts if a.failed), None)
            result = None
            if command == "drill-run" and exit_code != 0 and not attempts:
                result = "error"  # it raised before any report: it could not start
            reason = error or (failed.error if failed else None)
            attempts.append(
                new_attempt(
                    command,
                    scope,
                    exit_code,
                    utcnow(),
                    error=reason or (f"exit code {exit_code}" if exit_code else None),
                    result=result,
                    duration_seconds=round(time.monotonic() - app_state.started, 3),
                )
            )
    try:
        config = app_state.config
        # one attempt per request, short timeouts: the command has ended and its exit
        # code stands; a record lost to an outage is a warning (and a stale failure is
        # superseded by a newer committed backup: status.attempt_checks)
        storage = open_probe_storage(
            config.storage.url, config.storage, tls_min=config.security.ssl_min
        )
    except BackdrillError as exc:  # no usable config or repository: nowhere to record
        log.warning("cannot record the attempt: %s", error_line(str(exc)))
        return
    except Exception as exc:  # best effort, whatever happened: boto3 half-imported when
        # a signal cut its import short, say
        log.warning("cannot record the attempt: %s", error_line(f"{type(exc).__name__}: {exc}"))
        return
    try:
        record_all(storage, attempts)
    finally:
        storage.close()
