"""``backdrill verify``: integrity without restoring. Dispatches on the kind of the id:
database backups (found in the db catalogue) and filestore snapshots; ``--all`` both."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

import typer

from backdrill.cli.examples import example
from backdrill.cli.render import table
from backdrill.cli.state import AppState, state
from backdrill.files.catalog import list_snapshots
from backdrill.files.restore import MAX_NAMED
from backdrill.files.snapshot import Snapshot
from backdrill.repository.catalog import list_db_backups
from backdrill.repository.lookup import find_backup_or_snapshot
from backdrill.runtime.errors import IntegrityError, UsageError
from backdrill.runtime.timeutil import human_size
from backdrill.services.fetch import object_reader
from backdrill.services.verify_files import SnapshotVerification, parse_subset, verify_snapshots

if TYPE_CHECKING:
    from backdrill.services.verify_db import VerifyResult


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
    fraction = _read_fraction(read_data, read_data_subset)
    app_state = state(ctx)
    chosen = _verify_all(app_state, read_data) if backup_id is None else None
    if chosen is None:
        assert backup_id is not None
        chosen = _verify_one(app_state, backup_id, read_data)
    problems = _render_db(app_state, chosen.db, shown=bool(chosen.db) or not chosen.snapshots)
    problems += _verify_snapshots(app_state, chosen.snapshots, fraction)
    for reason in chosen.broken:
        app_state.out.print(f"FAIL: {reason}")
    if chosen.broken:
        problems.append(f"{len(chosen.broken)} unreadable files snapshot(s): {chosen.broken[0]}")
    if problems:
        named = "; ".join(problems[:MAX_NAMED])
        more = f"; and {len(problems) - MAX_NAMED} more" if len(problems) > MAX_NAMED else ""
        raise IntegrityError(f"verification failed: {named}{more}")


@dataclass
class _Verified:
    """The database backups verified, and the snapshots still to verify."""

    db: list[VerifyResult] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    #: unreadable or misplaced snapshots: each one a failure
    broken: list[str] = field(default_factory=list)


def _read_fraction(read_data: bool, read_data_subset: str | None) -> float:
    """The share of snapshot objects to re-hash: ``--read-data`` (all), ``--read-data-subset``."""
    if read_data_subset is None:
        return 1.0 if read_data else 0.0
    if read_data:
        raise UsageError("give either --read-data or --read-data-subset, not both")
    try:
        return parse_subset(read_data_subset)
    except ValueError as exc:
        raise UsageError(f"--read-data-subset {read_data_subset!r}: {exc}") from None


def _verify_all(app_state: AppState, read_data: bool) -> _Verified:
    from backdrill.services.verify_db import run_verify_db  # pg programs: when run

    listing = list_db_backups(app_state.storage)
    db = run_verify_db(app_state.run_context(), None, read_data=read_data, listing=listing)
    every = list_snapshots(app_state.storage)
    return _Verified(db, every.snapshots, [b.reason for b in every.broken])


def _verify_one(app_state: AppState, spec: str, read_data: bool) -> _Verified:
    from backdrill.services.verify_db import run_verify_db  # pg programs: when run

    listing = list_db_backups(app_state.storage)
    found = find_backup_or_snapshot(app_state.storage, spec, db=listing)
    if isinstance(found, Snapshot):
        return _Verified(snapshots=[found])
    run_ctx = app_state.run_context()
    return _Verified(run_verify_db(run_ctx, found.id, read_data=read_data, listing=listing))


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


def register(parent: typer.Typer) -> None:
    """Attach the commands of this module to ``parent`` (app.py builds the tree)."""
    parent.command("verify", epilog=example("verify"))(verify_cmd)
