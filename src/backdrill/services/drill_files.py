"""The filestore part of a drill: restore the snapshot taken nearest after the database
backup into the drill's work directory, then check every ``ir_attachment`` against it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from backdrill.files.attachments import check_attachments, restore_snapshot, select_snapshot_after
from backdrill.files.catalog import list_snapshots
from backdrill.files.snapshot import Snapshot
from backdrill.odoo.checks import Check
from backdrill.report.model import FilesRef
from backdrill.repository.manifest import DbManifest
from backdrill.runtime.errors import IntegrityError, NotFound
from backdrill.runtime.timeutil import human_size
from backdrill.sandbox import SandboxInfo
from backdrill.services.context import RunContext
from backdrill.services.facts import source_name
from backdrill.services.fetch import object_reader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FilesRestore:
    """What the filestore part of a drill restored, and the checks it made."""

    checks: tuple[Check, ...] = ()
    snapshot: Snapshot | None = None
    #: False when no snapshot was taken after the backup and an older one stood in
    after_backup: bool = True
    restored_dir: Path | None = None
    integrity_error: IntegrityError | None = None

    def rpo_seconds(self, drill_start: datetime) -> float | None:
        """The filestore's achieved RPO: drill start - snapshot created_at."""
        if self.snapshot is None:
            return None
        return round((drill_start - self.snapshot.created_at).total_seconds(), 3)

    def reference(self, drill_start: datetime) -> FilesRef | None:
        """The snapshot as the drill report names it (None: no snapshot restored)."""
        s = self.snapshot
        if s is None:
            return None
        return FilesRef(
            id=s.id,
            created_at=s.created_at,
            source_name=s.source_name,
            after_backup=self.after_backup,
            files=s.file_count,
            size_bytes=s.total_bytes,
            rpo_seconds=self.rpo_seconds(drill_start),
        )


def restore_filestore(ctx: RunContext, manifest: DbManifest, workdir: Path) -> FilesRestore:
    """Pick and restore the snapshot taken nearest after the backup."""
    if manifest.odoo is None:
        return FilesRestore((Check("attachments", "skip", "not an Odoo database"),))
    name = source_name(ctx.config)
    if name is None:
        return FilesRestore((Check("attachments", "skip", "no files -> source configured"),))
    try:
        choice = select_snapshot_after(
            list_snapshots(ctx.storage, name).snapshots, manifest.created_at
        )
    except NotFound as exc:
        return FilesRestore((Check("filestore_restore", "fail", f"{name}: {exc}"),))
    target = workdir / "filestore" / manifest.database
    try:
        reader = object_reader(ctx.config, ctx.storage)
        summary = restore_snapshot(reader, choice.snapshot, target, ctx.reporter)
    except IntegrityError as exc:
        failed = Check("filestore_restore", "fail", str(exc))
        return FilesRestore((failed,), choice.snapshot, choice.after, integrity_error=exc)
    when = "after" if choice.after else "BEFORE (no later snapshot exists)"
    restored = Check(
        "filestore_restore",
        "pass",
        f"snapshot {choice.snapshot.id} of {name}, taken {when} the backup: "
        f"{summary.files} files, {human_size(summary.bytes)}, every sha256 verified",
    )
    return FilesRestore((restored,), choice.snapshot, choice.after, restored_dir=target)


def check_filestore(info: SandboxInfo, restored: FilesRestore) -> list[Check]:
    """Every attachment of the restored database has its file, with the right sha1."""
    if restored.restored_dir is None:
        return []
    with info.params.connect() as conn:
        result = check_attachments(conn, restored.restored_dir)
    return [Check("attachments", "pass" if result.ok else "fail", result.detail())]
