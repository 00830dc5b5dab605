"""``--metrics-file PATH``: after any command, the repository's metrics (the same as
``serve``'s ``/metrics``) for node_exporter's textfile collector, written atomically.

The file is rebuilt from the repository each time, attempt records included: several
cron lines writing one file merge through the repository, none overwrites another's
failure."""

from __future__ import annotations

import logging

from backdrill.cli.state import AppState
from backdrill.runtime.errors import BackdrillError
from backdrill.runtime.timeutil import utcnow

log = logging.getLogger("backdrill")


def write_metrics_file(app_state: AppState, exit_code: int) -> None:
    """Never fails the command: a problem is logged as a warning."""
    path = app_state.metrics_file
    if path is None:
        return
    # imported only when asked for: prometheus_client and the SSOT weigh on start-up
    from backdrill.monitoring.metrics import build_registry, write_textfile
    from backdrill.policy.ssot import Policy, policy
    from backdrill.services.status import StatusReport, check_repository

    try:
        try:
            report, facts = check_repository(app_state.storage, app_state.config)
            in_force = policy(app_state.config)
        except BackdrillError as exc:  # no usable config: still say the run happened
            report, facts, in_force = StatusReport(utcnow(), error=str(exc)), None, Policy()
        command = app_state.attempt_scope[0] if app_state.attempt_scope else ""
        registry = build_registry(
            facts, report, in_force, last_run_exit_code=exit_code, last_run_command=command
        )
        write_textfile(path, registry)
    except OSError as exc:
        log.warning("cannot write the metrics file %s: %s", path, exc.strerror or exc)
    finally:
        app_state.close()
