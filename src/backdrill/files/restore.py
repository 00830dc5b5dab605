"""Restore a snapshot into a target: every file verified against its sha256 before it
appears under its name. Used by ``restore files`` and by the drill. The targets: a
directory (:mod:`backdrill.files.restore_dir`: modes, owners, mtimes, symlinks; never
outside it) or an S3 bucket/prefix (:class:`StorageTarget`: contents only; modes,
owners and symlinks do not apply there)."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field

from backdrill.errors import IntegrityError, Refused
from backdrill.files.objects import ObjectReader
from backdrill.files.pool import bounded_map
from backdrill.files.snapshot import FileEntry, Snapshot
from backdrill.files.source import safe_relative_path
from backdrill.progress import Advance, Reporter
from backdrill.storage import Storage

MAX_NAMED = 20


@dataclass(frozen=True)
class FailedFile:
    path: str
    reason: str


@dataclass
class RestoreSummary:
    snapshot_id: str
    target: str
    files: int = 0
    symlinks: int = 0
    bytes: int = 0
    seconds: float = 0.0
    #: entries not restorable to this kind of target (symlinks on S3)
    skipped: list[str] = field(default_factory=list)
    failed: list[FailedFile] = field(default_factory=list)


class RestoreTarget(ABC):
    display: str

    @abstractmethod
    def is_empty(self) -> bool: ...

    @abstractmethod
    def write_file(self, reader: ObjectReader, entry: FileEntry, advance: Advance) -> None:
        """Write, verify, then publish one file; nothing under its name if it fails."""

    @abstractmethod
    def write_symlink(self, entry: FileEntry) -> bool:
        """False when the target cannot hold symlinks."""

    def prepare(self, snapshot: Snapshot) -> None:  # noqa: B027 - optional hook
        """Before the first entry is written (create the target directory)."""


def path_conflict(entries: Iterable[FileEntry]) -> str | None:
    """Pure: why the entries cannot all be restored, or None. No backup records a path
    twice, nor a path under one it records as a symlink (``a -> /elsewhere`` then
    ``a/x``: symlinks come from directory sources, where ``a`` cannot be both). An S3
    source may hold both ``a`` and ``a/x`` as objects: that is not refused here."""
    paths: set[str] = set()
    links: set[str] = set()
    for entry in entries:
        if entry.path in paths:
            return f"{entry.path} is recorded twice"
        paths.add(entry.path)
        if entry.type == "symlink":
            links.add(entry.path)
    for path in paths:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            above = "/".join(parts[:depth])
            if above in links:
                return f"{path} lies under {above}, which it records as a symlink"
    return None


class StorageTarget(RestoreTarget):
    """An S3 bucket/prefix (or any repository-like storage): objects named by path."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.display = storage.url

    def is_empty(self) -> bool:
        return next(iter(self.storage.list_objects("")), None) is None

    def write_file(self, reader: ObjectReader, entry: FileEntry, advance: Advance) -> None:
        if not safe_relative_path(entry.path):
            raise IntegrityError(f"file {entry.path!r}: unsafe path in the snapshot")
        # the writer commits only when the block exits cleanly: a file whose content
        # does not verify never appears under its name
        with self.storage.open_writer(entry.path) as writer:
            reader.copy(entry, writer.write, advance)

    def write_symlink(self, entry: FileEntry) -> bool:
        return False


def restore_to(
    reader: ObjectReader,
    snapshot: Snapshot,
    target: RestoreTarget,
    reporter: Reporter,
    *,
    force: bool = False,
    strict: bool = True,
    workers: int = 4,
) -> RestoreSummary:
    """Restore every entry of ``snapshot`` into ``target``. A file that does not verify is
    not written; the others are. With ``strict`` (the default), an IntegrityError naming
    the failed files follows; otherwise they are listed in the summary. A missing or
    wrong identity (encrypted objects) is a ConfigError before anything is written."""
    if not force and not target.is_empty():
        raise Refused(
            f"restore target {target.display} is not empty",
            hint="restore into an empty directory or pass --force to overwrite",
        )
    conflict = path_conflict(snapshot.entries)
    if conflict is not None:
        raise IntegrityError(
            f"snapshot {snapshot.id} is inconsistent: {conflict}; nothing was restored",
            hint="no backup writes such a snapshot: it was altered in the repository",
        )
    started = time.monotonic()
    summary = RestoreSummary(snapshot.id, target.display)
    files = snapshot.files()
    reader.check_identity(files)
    target.prepare(snapshot)
    lock = threading.Lock()
    with reporter.task(f"restore {snapshot.source_name}", total=snapshot.total_bytes) as advance:
        for entry in snapshot.entries:
            if entry.type == "symlink":
                if target.write_symlink(entry):
                    summary.symlinks += 1
                else:
                    summary.skipped.append(entry.path)

        def one(entry: FileEntry) -> None:
            try:
                target.write_file(reader, entry, advance)
            except IntegrityError as exc:
                with lock:
                    summary.failed.append(FailedFile(entry.path, exc.message))
                return
            with lock:
                summary.files += 1
                summary.bytes += entry.size

        bounded_map(one, files, workers=workers, name="restore")
    summary.failed.sort(key=lambda f: f.path)
    summary.seconds = time.monotonic() - started
    if strict and summary.failed:
        raise failed_files_error(summary.failed, "restore")
    return summary


def failed_files_error(failed: list[FailedFile], action: str) -> IntegrityError:
    named = "; ".join(f.reason for f in failed[:MAX_NAMED])
    more = f"; and {len(failed) - MAX_NAMED} more" if len(failed) > MAX_NAMED else ""
    return IntegrityError(
        f"{action} found {len(failed)} damaged file(s): {named}{more}",
        hint="every other file was restored; `backdrill verify ID --read-data` lists all "
        "damaged files of a snapshot",
    )
