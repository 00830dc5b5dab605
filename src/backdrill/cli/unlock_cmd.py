"""``backdrill unlock SCOPE [--force]``."""

from __future__ import annotations

from typing import Annotated

import typer

from backdrill.cli.examples import example
from backdrill.cli.state import state


def unlock_cmd(
    ctx: typer.Context,
    scope: Annotated[str, typer.Argument(help="db-NAME, files-SOURCE or prune.")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Remove it even if it does not look stale."),
    ] = False,
) -> None:
    """Remove a lock left by a run that is gone (expired, or its process is gone)."""
    from backdrill.services.unlock import unlock

    app_state = state(ctx)
    done = unlock(app_state.storage, scope, force=force)
    app_state.out.print(f"removed the lock {done.scope} ({done.why})", markup=False)


def register(parent: typer.Typer) -> None:
    """Attach the commands of this module to ``parent`` (app.py builds the tree)."""
    parent.command("unlock", epilog=example("unlock"))(unlock_cmd)
