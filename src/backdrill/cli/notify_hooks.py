"""Webhook events of the commands (see :mod:`backdrill.notify`); never raise."""

from __future__ import annotations

from backdrill.cli.state import AppState
from backdrill.errors import BackdrillError, Interrupted
from backdrill.manifest import DbManifest
from backdrill.notify import backup_event, send
from backdrill.ssot import policy


def notify_backup(
    app_state: AppState,
    host: str,
    database: str | None,
    manifest: DbManifest | None,
    error: BackdrillError | Interrupted | None,
) -> None:
    """One event per database backup (``notify.on`` decides which are sent)."""
    event = backup_event(
        kind="backup db",
        run_id=app_state.run_id,
        host=host,
        policy=policy(app_state.config),
        database=database,
        manifest=manifest,
        error=error,
    )
    send(app_state.config.notify, event)
