"""``backdrill serve``: ``GET /health`` and ``GET /metrics`` until SIGTERM."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Annotated

import typer

from backdrill.cli.examples import example
from backdrill.cli.state import state
from backdrill.runtime.errors import Interrupted

log = logging.getLogger("backdrill")


def serve_cmd(
    ctx: typer.Context,
    listen: Annotated[
        str | None,
        typer.Option("--listen", help="HOST:PORT (default: serve.listen, 127.0.0.1:9187)."),
    ] = None,
) -> None:
    """Serve /health (200, or 503 when CRITICAL) and /metrics (Prometheus)."""
    from backdrill.services.serve import HealthApp, RepositoryCache, make_server, parse_listen
    from backdrill.services.serve_http import HttpSettings

    app_state = state(ctx)
    config = app_state.config
    address = parse_listen(listen or config.serve.listen)
    cache = RepositoryCache(app_state.storage, config, config.serve.cache_seconds)
    settings = HttpSettings(
        read_timeout_seconds=config.serve.read_timeout_seconds,
        connection_limit=config.serve.connection_limit,
        threads=config.serve.threads,
        behind_tls=config.serve.behind_tls,
    )
    server = make_server(address, HealthApp(cache), settings)
    host, port = str(server.server_address[0]), server.server_address[1]
    log.info(
        "serving /health and /metrics on http://%s:%s",
        f"[{host}]" if ":" in host else host,
        port,
        extra={"fields": {"cache_seconds": config.serve.cache_seconds, **asdict(settings)}},
    )
    try:
        server.serve_forever()
    except Interrupted as exc:
        log.info("serve stopped: %s", exc)
        raise
    finally:
        server.server_close()


def register(parent: typer.Typer) -> None:
    """Attach the commands of this module to ``parent`` (app.py builds the tree)."""
    parent.command("serve", epilog=example("serve"))(serve_cmd)
