"""``backdrill verify``: integrity of backups without restoring them."""

from __future__ import annotations

from typing import Annotated

import typer

from backdrill.cli.render import table
from backdrill.cli.state import AppState, state
from backdrill.errors import IntegrityError, NotFound, UsageError
from backdrill.files.catalog import find_snapshot, list_snapshots
from backdrill.files.restore import MAX_NAMED
from backdrill.files.snapshot import Snapshot
from backdrill.services.verify_files import SnapshotVerification, parse_subset, verify_snapshots
from backdrill.timeutil import human_size


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_cmd)


def verify_cmd(
    ctx: typer.Context,
    backup_id: Annotated[
        str | None, typer.Argument(metavar="ID", help="A backup or snapshot id.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every committed snapshot.")] = False,
    read_data: Annotated[
        bool, typer.Option("--read-data", help="Also download and re-hash every object.")
    ] = False,
    read_data_subset: Annotated[
        str | None,
        typer.Option(
            "--read-data-subset", metavar="PCT", help="Re-hash a random subset, e.g. 10%."
        ),
    ] = None,
) -> None:
    """Check that backups are complete and intact, without restoring them."""
    app_state = state(ctx)
    if (backup_id is None) == (not all_):
        raise UsageError("give either an ID or --all")
    fraction = 1.0 if read_data else 0.0
    if read_data_subset is not None:
        if read_data:
            raise UsageError("give either --read-data or --read-data-subset, not both")
        try:
            fraction = parse_subset(read_data_subset)
        except ValueError as exc:
            raise UsageError(f"--read-data-subset {read_data_subset!r}: {exc}") from None
    snapshots = list_snapshots(app_state.storage).snapshots
    if all_:
        chosen = snapshots
    else:
        assert backup_id is not None
        found = find_snapshot(snapshots, backup_id)
        if found is None:
            # database backups are verified by their own service, added here
            raise NotFound(f"no committed backup or files snapshot with id {backup_id}")
        chosen = [found]
    _verify_snapshots(app_state, chosen, fraction)


def _verify_snapshots(app_state: AppState, snapshots: list[Snapshot], fraction: float) -> None:
    results = verify_snapshots(
        app_state.storage,
        snapshots,
        read_fraction=fraction,
        reporter=app_state.run_context().reporter,
        workers=app_state.config.storage.max_concurrency,
    )
    _render(app_state, results)
    failed = [f for r in results for f in r.failed]
    if failed:
        named = "; ".join(f.reason for f in failed[:MAX_NAMED])
        more = f"; and {len(failed) - MAX_NAMED} more" if len(failed) > MAX_NAMED else ""
        raise IntegrityError(
            f"verify found {len(failed)} damaged file(s): {named}{more}",
            hint="while the source still has the file, the next `backup files` stores a "
            "missing object again; delete a damaged object from the repository first",
        )


def _render(app_state: AppState, results: list[SnapshotVerification]) -> None:
    if not results:
        app_state.out.print("nothing to verify: no committed files snapshot")
        return
    rows = [
        (
            "ok" if r.ok else "FAIL",
            r.snapshot_id,
            r.source_name,
            r.objects,
            f"{r.objects_read} ({human_size(r.bytes_read)})",
            len(r.failed),
        )
        for r in results
    ]
    app_state.out.print(
        table(
            "files snapshots verified",
            ["status", "id", "source", "objects", "re-hashed", "damaged files"],
            rows,
        )
    )
    for result in results:
        for failure in result.failed:
            app_state.out.print(f"damaged: {failure.reason}")
