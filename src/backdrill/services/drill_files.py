"""The filestore part of a drill: restore the snapshot taken nearest after the database
backup into the drill's work directory, then check every ``ir_attachment`` against it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from backdrill.checks import Check
from backdrill.errors import IntegrityError, NotFound
from backdrill.files.attachments import check_attachments, restore_snapshot, select_snapshot_after
from backdrill.files.catalog import list_snapshots
from backdrill.files.snapshot import Snapshot
from backdrill.manifest import DbManifest
from backdrill.sandbox import SandboxInfo
from backdrill.services.backup_files import configured_source_name
from backdrill.services.context import RunContext
from backdrill.services.fetch import object_reader
from backdrill.timeutil import human_size

log = logging.getLogger(__name__)


@dataclass
class FilesOutcome:
    snapshot: Snapshot | None = None
    #: False when no snapshot was taken after the backup and an older one stood in
    after_backup: bool = True
    restored_dir: Path | None = None
    checks: list[Check] = field(default_factory=list)
    integrity_error: IntegrityError | None = None

    def report_fields(self, drill_start: datetime) -> dict[str, object] | None:
        if self.snapshot is None:
            return None
        s = self.snapshot
        return {
            "id": s.id,
            "created_at": s.created_at,
            "source_name": s.source_name,
            "after_backup": self.after_backup,
            "files": s.file_count,
            "size_bytes": s.total_bytes,
            "rpo_seconds": round((drill_start - s.created_at).total_seconds(), 3),
        }


def restore_filestore(
    ctx: RunContext, manifest: DbManifest, workdir: Path, outcome: FilesOutcome
) -> None:
    """Pick and restore the snapshot; record the checks in ``outcome``."""
    if manifest.odoo is None:
        outcome.checks.append(Check("attachments", "skip", "not an Odoo database"))
        return
    name = configured_source_name(ctx)
    if name is None:
        outcome.checks.append(Check("attachments", "skip", "no files -> source configured"))
        return
    try:
        choice = select_snapshot_after(
            list_snapshots(ctx.storage, name).snapshots, manifest.created_at
        )
    except NotFound as exc:
        outcome.checks.append(Check("filestore_restore", "fail", f"{name}: {exc}"))
        return
    outcome.snapshot, outcome.after_backup = choice.snapshot, choice.after
    target = workdir / "filestore" / manifest.database
    try:
        reader = object_reader(ctx.config, ctx.storage)
        summary = restore_snapshot(reader, choice.snapshot, target, ctx.reporter)
    except IntegrityError as exc:
        outcome.integrity_error = exc
        outcome.checks.append(Check("filestore_restore", "fail", str(exc)))
        return
    when = "after" if choice.after else "BEFORE (no later snapshot exists)"
    outcome.restored_dir = target
    outcome.checks.append(
        Check(
            "filestore_restore",
            "pass",
            f"snapshot {choice.snapshot.id} of {name}, taken {when} the backup: "
            f"{summary.files} files, {human_size(summary.bytes)}, every sha256 verified",
        )
    )


def check_filestore(info: SandboxInfo, outcome: FilesOutcome) -> None:
    """Every attachment of the restored database has its file, with the right sha1."""
    if outcome.restored_dir is None:
        return
    with info.params.connect() as conn:
        result = check_attachments(conn, outcome.restored_dir)
    outcome.checks.append(Check("attachments", "pass" if result.ok else "fail", result.detail()))
