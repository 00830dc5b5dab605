"""``verify`` of database backups, without restoring: the manifest is readable, the dump
object exists with the recorded size; with ``read_data``, the stored bytes hash to the
recorded sha256, decompress, and ``pg_restore --list`` reads the archive."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from backdrill.pg import binaries
from backdrill.pg.command import run as run_program
from backdrill.repository.catalog import DbListing, list_db_backups
from backdrill.repository.manifest import DbManifest
from backdrill.runtime.errors import IntegrityError, NotFound, PostgresError
from backdrill.services.context import RunContext
from backdrill.services.fetch import fetch_backup, object_key

log = logging.getLogger(__name__)


@dataclass
class VerifyResult:
    id: str
    target: str  # database name, or the manifest key when unreadable
    problems: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _read_data(
    ctx: RunContext, manifest: DbManifest, pg_restore: Path, result: VerifyResult
) -> None:
    with tempfile.TemporaryDirectory(prefix="backdrill-verify-") as tmp:
        dump = fetch_backup(ctx.storage, manifest, Path(tmp), ctx.reporter, ctx.config)
        result.checks.append("sha256 and sizes match")
        listing = run_program([pg_restore, "--list", dump], what="pg_restore --list")
        entries = sum(1 for line in listing.splitlines() if line and not line.startswith(";"))
        result.checks.append(f"pg_restore --list reads {entries} entries")


def verify_backup(ctx: RunContext, manifest: DbManifest, *, read_data: bool) -> VerifyResult:
    result = VerifyResult(manifest.id, manifest.database, checks=["manifest readable"])
    for obj in manifest.stored_objects():
        key = object_key(manifest, obj)
        info = ctx.storage.head(key)
        if info is None:
            result.problems.append(f"object {key} is missing")
        elif info.size != obj.stored_size:
            result.problems.append(
                f"object {key} has {info.size} bytes, manifest says {obj.stored_size}"
            )
    if result.problems:
        return result
    result.checks.append("objects present with the recorded sizes")
    if read_data:
        major = binaries.major_version(manifest.server_version)
        pg_restore = binaries.find_program("pg_restore", major, bin_dir=ctx.config.postgres.bin_dir)
        try:
            _read_data(ctx, manifest, pg_restore.path, result)
        except (IntegrityError, NotFound, PostgresError) as exc:
            # a corrupt frame, a vanished object, pg_restore rejecting the archive;
            # storage failures (exit 5) propagate: they say nothing about the backup
            result.problems.append(str(exc))
    return result


def run_verify_db(
    ctx: RunContext,
    backup_id: str | None,
    *,
    read_data: bool,
    listing: DbListing | None = None,
) -> list[VerifyResult]:
    """Verify one backup (by id) or, with ``backup_id`` None, every backup and every
    unreadable manifest (each unreadable one is a failure)."""
    listing = listing or list_db_backups(ctx.storage)
    if backup_id is not None:
        chosen = [m for m in listing.backups if m.id == backup_id]
        if not chosen:
            raise NotFound(f"no committed database backup with id {backup_id}")
        return [verify_backup(ctx, chosen[0], read_data=read_data)]
    results = [VerifyResult(b.key, b.key, problems=[b.reason]) for b in listing.broken]
    for manifest in listing.backups:
        results.append(verify_backup(ctx, manifest, read_data=read_data))
    return results
