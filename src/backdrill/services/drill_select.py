"""The start of a drill: the backup to drill (its identity readable), the RPO's history,
and a sandbox for its major version that is able to start; failures here write no
evidence report, as nothing was drilled."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from backdrill.pg.binaries import major_version
from backdrill.repository.catalog import list_db_backups, select_backup
from backdrill.repository.manifest import DbManifest
from backdrill.sandbox import Sandbox
from backdrill.sandbox.factory import open_sandbox
from backdrill.services.context import RunContext
from backdrill.services.fetch import readable_manifest

if TYPE_CHECKING:
    from backdrill.services.drill import DrillOptions


def select_backup_to_drill(
    ctx: RunContext, options: DrillOptions
) -> tuple[DbManifest, list[tuple[str, datetime]]]:
    """The backup to drill (its identity readable: exit 3 otherwise), and the creation
    times of the backups of its database (the RPO's history)."""
    listing = list_db_backups(ctx.storage)
    listing.refuse_broken(options.backup)
    manifest = select_backup(
        listing.backups, options.backup, database=options.database, source=options.source
    )
    manifest = readable_manifest(ctx.config, manifest)  # exit 3 on a missing/wrong identity
    history = [
        (m.id, m.created_at)
        for m in listing.backups
        if (m.source, m.database) == (manifest.source, manifest.database)
    ]
    return manifest, history


def ready_sandbox(
    ctx: RunContext, options: DrillOptions, manifest: DbManifest, kind: str
) -> Sandbox:
    """The sandbox of ``kind`` for the backup's major version, checked to be able to
    start: a configuration error (unknown kind, no server_dsn) is exit 3, a sandbox that
    cannot start here (no docker extra or engine, no server binaries) a setup error,
    exit 5; neither writes an evidence report: nothing was drilled."""
    sandbox = open_sandbox(
        kind,
        major_version(manifest.server_version),
        ctx.config,
        allow_newer=options.allow_newer,
        keep=options.keep_sandbox,
    )
    sandbox.check_available()
    return sandbox
