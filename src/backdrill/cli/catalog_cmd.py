"""``backdrill list`` and ``backdrill show``."""

from __future__ import annotations

import enum
import json
from typing import Annotated

import typer

from backdrill.catalog import list_db_backups, select_backup
from backdrill.cli.render import print_json, table
from backdrill.cli.state import state
from backdrill.errors import IntegrityError
from backdrill.timeutil import human_duration, human_size, utcnow


class Kind(enum.StrEnum):
    db = "db"


def register(app: typer.Typer) -> None:
    app.command("list")(list_cmd)
    app.command("show")(show_cmd)


def list_cmd(
    ctx: typer.Context,
    kind: Annotated[Kind, typer.Argument(help="What to list.")] = Kind.db,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array of manifests.")] = False,
) -> None:
    """List committed backups, oldest first."""
    app_state = state(ctx)
    listing = list_db_backups(app_state.storage)
    if as_json:
        print_json(app_state.out, [json.loads(m.to_json()) for m in listing.backups])
        return
    now = utcnow()
    rows = [
        (
            m.id,
            m.database,
            m.created_at.strftime("%Y-%m-%d %H:%M:%SZ"),
            human_size(m.stored_size),
            human_duration((now - m.created_at).total_seconds()),
        )
        for m in listing.backups
    ]
    app_state.out.print(
        table(
            f"database backups in {app_state.storage.url}",
            ["id", "database", "created", "size", "age"],
            rows,
        )
    )
    for broken in listing.broken:
        typer.echo(f"warning: unreadable manifest {broken.key}: {broken.reason}", err=True)


def show_cmd(
    ctx: typer.Context,
    backup_id: Annotated[str, typer.Argument(metavar="ID", help="A backup id.")],
    as_json: Annotated[bool, typer.Option("--json", help="The manifest as JSON.")] = False,
) -> None:
    """Show one backup's manifest."""
    app_state = state(ctx)
    listing = list_db_backups(app_state.storage)
    for broken in listing.broken:  # name the problem, not "no such backup"
        if f"/{backup_id}/" in broken.key:
            raise IntegrityError(broken.reason)
    manifest = select_backup(listing.backups, backup_id)
    if as_json:
        print_json(app_state.out, json.loads(manifest.to_json()))
        return
    rows: list[tuple[str, object]] = [
        ("id", manifest.id),
        ("database", manifest.database),
        ("created_at (recovery point)", manifest.created_at.isoformat()),
        ("finished_at", manifest.finished_at.isoformat()),
        ("stored size", f"{human_size(manifest.stored_size)} ({manifest.stored_size} bytes)"),
        ("raw size", f"{human_size(manifest.raw_size)} ({manifest.raw_size} bytes)"),
        ("sha256", manifest.sha256),
        ("server / pg_dump", f"{manifest.server_version} / {manifest.pg_dump_version}"),
        ("tables / rows", f"{len(manifest.tables)} / {sum(t.rows for t in manifest.tables)}"),
        ("run id", manifest.run_id),
        ("host", manifest.host),
    ]
    app_state.out.print(table(f"backup {manifest.id}", ["field", "value"], rows))
