"""``backdrill restore files``."""

from __future__ import annotations

from typing import Annotated

import typer

from backdrill.cli.examples import example
from backdrill.cli.options import BeforeOption, parse_before
from backdrill.cli.state import state
from backdrill.runtime.timeutil import human_duration, human_size, utcnow


def restore_files(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="An empty directory, or s3://bucket/prefix.")],
    snapshot: Annotated[
        str, typer.Option("--snapshot", help="A snapshot id, or latest.")
    ] = "latest",
    before: BeforeOption = None,
    source_name: Annotated[
        str | None,
        typer.Option("--source-name", help="Which source, when the repository holds several."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Restore into a non-empty target, overwriting.")
    ] = False,
    keep_special_bits: Annotated[
        bool,
        typer.Option(
            "--keep-special-bits",
            help="Restore the setuid, setgid and sticky bits too (dropped by default).",
        ),
    ] = False,
) -> None:
    """Restore a filestore snapshot, verifying every file's sha256, with modes and mtimes
    (and owners, when run as root)."""
    from backdrill.services.restore_files import run_restore_files

    moment = parse_before(before, now=utcnow())
    app_state = state(ctx)
    summary = run_restore_files(
        app_state.run_context(),
        to,
        spec=snapshot,
        before=moment,
        source_name=source_name,
        force=force,
        keep_special_bits=keep_special_bits,
    )
    line = (
        f"restored snapshot {summary.snapshot_id} to {summary.target}: {summary.files} files "
        f"({human_size(summary.bytes)}), {summary.symlinks} symlinks, verified, "
        f"in {human_duration(summary.seconds)}"
    )
    if summary.skipped:
        line += f"; {len(summary.skipped)} symlinks not restorable to this target"
    app_state.out.print(line)


def register(parent: typer.Typer) -> None:
    """Attach ``files`` to ``parent`` (the ``restore`` group app.py builds)."""
    parent.command("files", epilog=example("restore files"))(restore_files)
