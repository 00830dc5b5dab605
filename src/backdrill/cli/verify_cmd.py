"""``backdrill verify``: integrity without restoring. Dispatches on the kind of the id:
database backups (found in the db catalogue) and filestore snapshots; ``--all`` both."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from backdrill.catalog import DbListing, list_db_backups, select_backup
from backdrill.cli.examples import example
from backdrill.cli.render import table
from backdrill.cli.state import AppState, state
from backdrill.errors import IntegrityError, NotFound, UsageError
from backdrill.files.catalog import find_snapshot, list_snapshots
from backdrill.files.restore import MAX_NAMED
from backdrill.files.snapshot import Snapshot
from backdrill.selection import resolve_id
from backdrill.services.fetch import object_reader
from backdrill.services.verify_files import SnapshotVerification, parse_subset, verify_snapshots
from backdrill.timeutil import human_size

if TYPE_CHECKING:
    from backdrill.services.verify_db import VerifyResult


def register(app: typer.Typer) -> None:
    app.command("verify", epilog=example("verify"))(verify_cmd)


def verify_cmd(
    ctx: typer.Context,
    backup_id: Annotated[
        str | None,
        typer.Argument(
            metavar="ID",
            help="A backup or files snapshot id, a unique prefix of one, or latest "
            "(the newest database backup).",
        ),
    ] = None,
    all_backups: Annotated[
        bool, typer.Option("--all", help="Every backup and every files snapshot.")
    ] = False,
    read_data: Annotated[
        bool,
        typer.Option(
            "--read-data",
            help="Download and re-hash: dumps (and pg_restore --list), snapshot objects.",
        ),
    ] = False,
    read_data_subset: Annotated[
        str | None,
        typer.Option(
            "--read-data-subset",
            metavar="PCT",
            help="Re-hash a random subset of the snapshot objects, e.g. 10%.",
        ),
    ] = None,
) -> None:
    """Check backups without restoring; exit 4 naming every failing one."""
    if (backup_id is None) == (not all_backups):
        raise UsageError("give either an ID or --all")
    fraction = 1.0 if read_data else 0.0
    if read_data_subset is not None:
        if read_data:
            raise UsageError("give either --read-data or --read-data-subset, not both")
        try:
            fraction = parse_subset(read_data_subset)
        except ValueError as exc:
            raise UsageError(f"--read-data-subset {read_data_subset!r}: {exc}") from None
    from backdrill.services.verify_db import run_verify_db  # pg programs: when run

    app_state = state(ctx)
    run_ctx = app_state.run_context()

    listing = list_db_backups(app_state.storage)
    db_results: list[VerifyResult] = []
    snapshots: list[Snapshot] = []
    broken: list[str] = []  # unreadable or misplaced snapshots: each one a failure
    if all_backups:
        db_results += run_verify_db(run_ctx, None, read_data=read_data, listing=listing)
        every = list_snapshots(app_state.storage)
        snapshots = every.snapshots
        broken = [b.reason for b in every.broken]
    else:
        assert backup_id is not None
        backup_id = _resolve(app_state, listing, backup_id)
    if backup_id is not None and any(m.id == backup_id for m in listing.backups):
        db_results += run_verify_db(run_ctx, backup_id, read_data=read_data, listing=listing)
    elif backup_id is not None:
        listing.refuse_broken(backup_id)  # a misplaced manifest: exit 4 naming it
        snapshot_listing = list_snapshots(app_state.storage)
        snapshot_listing.refuse_broken(backup_id)
        found = find_snapshot(snapshot_listing.snapshots, backup_id)
        if found is None:
            raise NotFound(
                f"no backup with id {backup_id} (neither a database backup nor a files snapshot)",
                hint="see `backdrill list` and `backdrill list files`",
            )
        snapshots = [found]
    problems = _render_db(app_state, db_results, shown=bool(db_results) or not snapshots)
    problems += _verify_snapshots(app_state, snapshots, fraction)
    for reason in broken:
        app_state.out.print(f"FAIL: {reason}")
    if broken:
        problems.append(f"{len(broken)} unreadable files snapshot(s): {broken[0]}")
    if problems:
        named = "; ".join(problems[:MAX_NAMED])
        more = f"; and {len(problems) - MAX_NAMED} more" if len(problems) > MAX_NAMED else ""
        raise IntegrityError(f"verification failed: {named}{more}")


def _resolve(app_state: AppState, listing: DbListing, spec: str) -> str:
    """``latest`` (the newest database backup, as ``show latest``), a whole id, or a
    unique prefix of a backup or snapshot id: the id it names (else ``spec`` itself)."""
    if spec == "latest":
        return select_backup(listing.backups, "latest").id
    snapshots = list_snapshots(app_state.storage).snapshots
    ids = [*(m.id for m in listing.backups), *(s.id for s in snapshots)]
    return resolve_id(ids, spec, what="backup or snapshot") or spec


def _render_db(app_state: AppState, results: list[VerifyResult], *, shown: bool) -> list[str]:
    if not shown:
        return []
    rows = [
        (r.id, r.target, "ok" if r.ok else "FAIL", "; ".join(r.problems or r.checks))
        for r in results
    ]
    app_state.out.print(table("backdrill verify", ["id", "of", "status", "detail"], rows))
    failed = [r for r in results if not r.ok]
    app_state.out.print(f"{len(results)} backup(s) verified")
    if not failed:
        return []
    names = "; ".join(f"{r.id} ({r.problems[0]})" for r in failed)
    return [f"{len(failed)} of {len(results)} backups failed verification: {names}"]


def _verify_snapshots(app_state: AppState, snapshots: list[Snapshot], fraction: float) -> list[str]:
    if not snapshots:
        return []
    results = verify_snapshots(
        object_reader(app_state.config, app_state.storage),
        snapshots,
        read_fraction=fraction,
        reporter=app_state.run_context().reporter,
        workers=app_state.config.storage.max_concurrency,
    )
    _render_files(app_state, results)
    failed = [f for r in results for f in r.failed]
    if not failed:
        return []
    named = "; ".join(f.reason for f in failed[:MAX_NAMED])
    more = f"; and {len(failed) - MAX_NAMED} more" if len(failed) > MAX_NAMED else ""
    return [f"{len(failed)} damaged file(s) in files snapshots: {named}{more}"]


def _render_files(app_state: AppState, results: list[SnapshotVerification]) -> None:
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
