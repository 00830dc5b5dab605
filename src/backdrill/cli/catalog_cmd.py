"""``backdrill list`` and ``backdrill show``."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import typer

from backdrill.cli.examples import example
from backdrill.cli.render import print_json, table, warn
from backdrill.cli.state import AppState, state
from backdrill.files.catalog import list_snapshots
from backdrill.files.chunks import iter_entries, iter_skipped
from backdrill.files.snapshot import Snapshot
from backdrill.repository.catalog import list_db_backups
from backdrill.repository.lookup import find_backup_or_snapshot
from backdrill.repository.manifest import DbManifest
from backdrill.runtime.timeutil import human_duration, human_size, utcnow


class Kind(enum.StrEnum):
    db = "db"
    files = "files"


def list_cmd(
    ctx: typer.Context,
    kind: Annotated[Kind, typer.Argument(help="What to list: db or files.")] = Kind.db,
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON array of manifests (snapshot summaries).")
    ] = False,
) -> None:
    """List committed backups, oldest first."""
    app_state = state(ctx)
    if kind is Kind.files:
        _list_files(app_state, as_json)
        return
    listing = list_db_backups(app_state.storage)
    for broken in listing.broken:  # on stderr, also with --json
        warn(f"warning: unreadable manifest {broken.key}: {broken.reason}")
    if as_json:
        print_json(app_state.out, [json.loads(m.to_json()) for m in listing.backups])
        return
    if not listing.backups:
        app_state.out.print(f"no backups yet in {app_state.storage.url}: run `backdrill backup db`")
        return
    now = utcnow()
    rows = [
        (
            m.id,
            m.source,
            m.database,
            _created(m.created_at),
            human_size(m.stored_size),
            _age(m.created_at, now),
        )
        for m in listing.backups
    ]
    columns = ["id", "source", "database", "created", "size", "age"]
    _print_listing(app_state, "database backups", columns, rows)


def _created(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _age(created_at: datetime, now: datetime) -> str:
    return human_duration((now - created_at).total_seconds())


def _print_listing(
    app_state: AppState, what: str, columns: list[str], rows: Sequence[Sequence[object]]
) -> None:
    """The table of ``list``: ``what`` (database backups, files snapshots) in the repository."""
    app_state.out.print(table(f"{what} in {app_state.storage.url}", columns, rows))


def _list_files(app_state: AppState, as_json: bool) -> None:
    listing = list_snapshots(app_state.storage)
    for broken in listing.broken:  # on stderr, also with --json
        warn(f"warning: unreadable snapshot {broken.key}: {broken.reason}")
    if as_json:
        print_json(app_state.out, [s.summary() for s in listing.snapshots])
        return
    if not listing.snapshots:
        app_state.out.print(
            f"no files snapshots yet in {app_state.storage.url}: run `backdrill backup files`"
        )
        return
    now = utcnow()
    rows = [
        (
            s.id,
            s.source_name,
            _created(s.created_at),
            s.file_count,
            human_size(s.total_bytes),
            human_size(s.uploaded_bytes),
            _age(s.created_at, now),
        )
        for s in listing.snapshots
    ]
    columns = ["id", "source", "created", "files", "size", "uploaded", "age"]
    _print_listing(app_state, "files snapshots", columns, rows)


def _show_snapshot(app_state: AppState, snapshot: Snapshot, as_json: bool) -> None:
    if as_json:  # the root, and every entry read from its chunks (schema_version 2)
        doc = json.loads(snapshot.to_json())
        doc["entries"] = [
            json.loads(e.model_dump_json()) for e in iter_entries(app_state.storage, snapshot)
        ]
        doc["skipped"] = [
            json.loads(s.model_dump_json()) for s in iter_skipped(app_state.storage, snapshot)
        ]
        print_json(app_state.out, doc)
        return
    rows: list[tuple[str, object]] = [
        ("id", snapshot.id),
        ("source", f"{snapshot.source} (name {snapshot.source_name})"),
        ("created_at (recovery point)", snapshot.created_at.isoformat()),
        ("finished_at", snapshot.finished_at.isoformat()),
        ("files", snapshot.file_count),
        ("total size", f"{human_size(snapshot.total_bytes)} ({snapshot.total_bytes} bytes)"),
        ("read / new objects", f"{snapshot.files_read} / {snapshot.new_objects}"),
        ("uploaded", f"{human_size(snapshot.uploaded_bytes)} ({snapshot.uploaded_bytes} bytes)"),
        ("changed during backup", snapshot.changed_count),
        ("skipped", snapshot.skipped_count),
        ("run id", snapshot.run_id),
        ("host", snapshot.host),
    ]
    app_state.out.print(table(f"files snapshot {snapshot.id}", ["field", "value"], rows))
    for entry in iter_entries(app_state.storage, snapshot):
        if entry.status == "changed":
            app_state.out.print(f"changed during backup: {entry.path}")
    for skipped in iter_skipped(app_state.storage, snapshot):
        app_state.out.print(f"skipped: {skipped.path}: {skipped.reason}")


def show_cmd(
    ctx: typer.Context,
    backup_id: Annotated[
        str,
        typer.Argument(
            metavar="ID", help="A backup or files snapshot id, a unique prefix of one, or latest."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="The manifest as JSON.")] = False,
) -> None:
    """Show one backup's manifest or one files snapshot."""
    app_state = state(ctx)
    found = find_backup_or_snapshot(app_state.storage, backup_id)
    if isinstance(found, Snapshot):
        _show_snapshot(app_state, found, as_json)
    else:
        _show_backup(app_state, found, as_json)


def _show_backup(app_state: AppState, manifest: DbManifest, as_json: bool) -> None:
    if as_json:
        print_json(app_state.out, json.loads(manifest.to_json()))
        return
    rows: list[tuple[str, object]] = [
        ("id", manifest.id),
        ("source", manifest.source),
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


def register(parent: typer.Typer) -> None:
    """Attach the commands of this module to ``parent`` (app.py builds the tree)."""
    parent.command("list", epilog=example("list"))(list_cmd)
    parent.command("show", epilog=example("show"))(show_cmd)
