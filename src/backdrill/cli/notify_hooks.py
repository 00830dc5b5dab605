"""Webhook events of the commands (see :mod:`backdrill.monitoring.notify`); never raise."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backdrill.cli.state import AppState
from backdrill.repository.manifest import DbManifest
from backdrill.runtime.errors import BackdrillError, Interrupted

if TYPE_CHECKING:
    from backdrill.services.drill import DrillOutcome


def notify_backup(
    app_state: AppState,
    host: str,
    database: str | None,
    manifest: DbManifest | None,
    error: BackdrillError | Interrupted | None,
) -> None:
    """One event per database backup (``notify.on`` decides which are sent)."""
    if app_state.config.notify.webhook_url is None:
        return
    # imported only when a webhook is configured: they weigh on every run's start-up
    from backdrill.monitoring.notify import backup_event, send
    from backdrill.policy.ssot import policy

    event = backup_event(
        kind="backup db",
        run_id=app_state.run_id,
        host=host,
        policy=policy(app_state.config),
        database=database,
        manifest=manifest,
        error=error,
    )
    send(app_state.config.notify, event, tls_min=app_state.config.security.ssl_min)


def notify_drill(app_state: AppState, outcome: DrillOutcome) -> None:
    """One event per drill."""
    if app_state.config.notify.webhook_url is None:
        return
    from backdrill.monitoring.notify import drill_event, send

    send(
        app_state.config.notify,
        drill_event(outcome.report, exit_code=outcome.exit_code),
        tls_min=app_state.config.security.ssl_min,
    )
