"""``backdrill config check``."""

from __future__ import annotations

import typer

from backdrill.cli.examples import example
from backdrill.cli.render import table
from backdrill.cli.state import state


def check(ctx: typer.Context) -> None:
    """Validate the config; reach PostgreSQL, storage, the filestore and the webhook; check
    pg_dump/pg_restore, what a drill needs, the TLS negotiated with each endpoint and the
    age of each secret file. Every problem at once, in seconds."""
    from backdrill.services.config_check import run_config_check  # psycopg: when needed
    from backdrill.storage import open_probe_storage

    app_state = state(ctx)
    config = app_state.config
    storage = open_probe_storage(
        config.storage.url, config.storage, tls_min=config.security.ssl_min
    )
    try:
        results = run_config_check(config, storage)
    finally:
        storage.close()
    rows = [
        ("FAIL" if not r.ok else "WARNING" if r.warning else "ok", r.name, r.detail)
        for r in results
    ]
    app_state.out.print(table("backdrill config check", ["status", "check", "detail"], rows))
    failed = [r for r in results if not r.ok]
    warned = [r for r in results if r.ok and r.warning]
    summary = f"{len(failed)} check(s) failed" if failed else "all checks passed"
    if warned:
        summary += f"; {len(warned)} warning(s)"
    app_state.out.print(summary)
    if failed:
        raise typer.Exit(1)


def register(parent: typer.Typer) -> None:
    """Attach the commands of this module to ``parent`` (app.py builds the tree)."""
    parent.command("check", epilog=example("config check"))(check)
