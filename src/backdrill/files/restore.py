"""Restore a snapshot: every file written under a temporary name while its sha256 is
verified, then given its mode and mtime and renamed into place. Used by ``restore
files`` and by the drill (:func:`restore_snapshot`)."""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from backdrill.errors import IntegrityError, StorageError, UsageError
from backdrill.files.objects import ObjectReader
from backdrill.files.pool import bounded_map
from backdrill.files.snapshot import FileEntry, Snapshot
from backdrill.files.source import safe_relative_path
from backdrill.progress import Advance, Reporter
from backdrill.storage import Storage

TMP_PREFIX = ".backdrill-restore-"
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


class DirTarget(RestoreTarget):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.display = str(root)
        self._real_root: Path | None = None

    def is_empty(self) -> bool:
        if not self.root.exists():
            return True
        if not self.root.is_dir():
            raise UsageError(f"restore target {self.root} exists and is not a directory")
        return next(self.root.iterdir(), None) is None

    def _destination(self, entry: FileEntry) -> Path:
        if not safe_relative_path(entry.path):
            raise IntegrityError(f"file {entry.path!r}: unsafe path in the snapshot")
        if self._real_root is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._real_root = self.root.resolve()
        dest = self.root / entry.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.parent.resolve().is_relative_to(self._real_root):
            raise IntegrityError(f"file {entry.path}: a symlink in the target leads outside it")
        return dest

    def write_file(self, reader: ObjectReader, entry: FileEntry, advance: Advance) -> None:
        dest = self._destination(entry)
        tmp = dest.with_name(f"{TMP_PREFIX}{dest.name}.{secrets.token_hex(4)}")
        try:
            with tmp.open("xb") as out:
                reader.copy(entry, out.write, advance)
            os.chmod(tmp, entry.mode)
            os.utime(tmp, ns=(entry.mtime_ns, entry.mtime_ns))
            os.replace(tmp, dest)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise StorageError(f"cannot write {dest}: {exc.strerror}") from None
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise

    def write_symlink(self, entry: FileEntry) -> bool:
        assert entry.target is not None
        dest = self._destination(entry)
        tmp = dest.with_name(f"{TMP_PREFIX}{dest.name}.{secrets.token_hex(4)}")
        os.symlink(entry.target, tmp)
        os.utime(tmp, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)
        os.replace(tmp, dest)
        return True


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
        raise UsageError(
            f"restore target {target.display} is not empty",
            hint="restore into an empty directory or pass --force to overwrite",
        )
    started = time.monotonic()
    summary = RestoreSummary(snapshot.id, target.display)
    files = snapshot.files()
    reader.check_identity(files)
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


def restore_snapshot(
    reader: ObjectReader,
    snapshot: Snapshot,
    target_dir: Path,
    reporter: Reporter,
    *,
    force: bool = False,
    strict: bool = True,
) -> RestoreSummary:
    """Restore ``snapshot`` into the directory ``target_dir`` (the drill's entry point)."""
    return restore_to(reader, snapshot, DirTarget(target_dir), reporter, force=force, strict=strict)
