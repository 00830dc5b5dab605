"""``restore files``: choose a snapshot, open the target (a directory or an S3
bucket/prefix with the ``files -> s3`` endpoint) and restore it."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

from backdrill.files.catalog import list_snapshots, select_snapshot
from backdrill.files.restore import (
    RestoreSummary,
    RestoreTarget,
    StorageTarget,
    restore_threads,
    restore_to,
)
from backdrill.files.restore_dir import DirTarget
from backdrill.files.snapshot import Snapshot
from backdrill.services.context import RunContext
from backdrill.services.fetch import object_reader
from backdrill.storage import open_storage

log = logging.getLogger(__name__)


def choose_snapshot(
    ctx: RunContext,
    spec: str = "latest",
    *,
    before: datetime | None = None,
    source_name: str | None = None,
) -> Snapshot:
    listing = list_snapshots(ctx.storage)
    for broken in listing.broken:
        log.warning("unreadable snapshot %s: %s", broken.key, broken.reason)
    listing.refuse_broken(spec)
    names = {s.source_name for s in listing.snapshots}
    if source_name is None and spec == "latest" and len(names) > 1:
        source_name = ctx.config.files.name  # the configured source, when it is named
    return select_snapshot(listing.snapshots, spec, source_name=source_name, before=before)


def run_restore_files(
    ctx: RunContext,
    to: str,
    *,
    spec: str = "latest",
    before: datetime | None = None,
    source_name: str | None = None,
    force: bool = False,
    keep_special_bits: bool = False,
) -> RestoreSummary:
    """Into a directory: modes (setuid, setgid and sticky only with
    ``keep_special_bits``), mtimes, symlinks, and owners when running as root. Into
    S3: the contents only (modes, owners and symlinks do not apply to objects)."""
    snapshot = choose_snapshot(ctx, spec, before=before, source_name=source_name)
    parsed = urlparse(to)
    target: RestoreTarget
    if parsed.scheme == "s3":
        target_storage = open_storage(to, ctx.config.files.s3, tls_min=ctx.config.security.ssl_min)
        target = StorageTarget(target_storage)
    else:
        target_storage = None
        directory = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(to)
        target = DirTarget(directory, keep_special_bits=keep_special_bits)
    log.info(
        "restore of files snapshot %s started",
        snapshot.id,
        extra={"fields": {"snapshot_id": snapshot.id, "target": target.display}},
    )
    try:
        reader = object_reader(ctx.config, ctx.storage)
        summary = restore_to(
            reader,
            snapshot,
            target,
            ctx.reporter,
            force=force,
            workers=restore_threads(reader, target, ctx.config.storage.max_concurrency),
        )
    finally:
        if target_storage is not None:
            target_storage.close()
    log.info(
        "restore of files snapshot %s finished",
        snapshot.id,
        extra={
            "fields": {
                "snapshot_id": snapshot.id,
                "files": summary.files,
                "bytes": summary.bytes,
                "seconds": round(summary.seconds, 3),
            }
        },
    )
    return summary
