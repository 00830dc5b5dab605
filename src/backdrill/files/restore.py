"""Restore a snapshot into a target: every file verified against its sha256 before it
appears under its name. Used by ``restore files`` and by the drill. The targets: a
directory (:mod:`backdrill.files.restore_dir`: modes, owners, mtimes, symlinks; never
outside it) or an S3 bucket/prefix (:class:`StorageTarget`: contents only; modes,
owners and symlinks do not apply there)."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from backdrill.files.chunks import iter_entries
from backdrill.files.objects import ObjectReader
from backdrill.files.pool import ordered_map
from backdrill.files.snapshot import FileEntry, Snapshot, is_encrypted
from backdrill.files.source import safe_relative_path
from backdrill.runtime.errors import IntegrityError, Refused
from backdrill.runtime.progress import Advance, Reporter
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
    #: written on this machine's file system (not through the network)
    local: bool = False

    @abstractmethod
    def is_empty(self) -> bool: ...

    @abstractmethod
    def write_file(self, reader: ObjectReader, entry: FileEntry, advance: Advance) -> None:
        """Write, verify, then publish one file; nothing under its name if it fails."""

    @abstractmethod
    def write_symlink(self, entry: FileEntry) -> bool:
        """False when the target cannot hold symlinks."""

    def prepare(self, first_owned: FileEntry | None) -> None:  # noqa: B027 - optional hook
        """Before the first entry is written (create the target directory);
        ``first_owned``: the snapshot's first entry that records an owner."""


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
        if (problem := _under_link(path, links)) is not None:
            return problem
    return None


@dataclass
class _Survey:
    """What the first pass over a snapshot's entries found (nothing written yet)."""

    conflict: str | None = None
    first_owned: FileEntry | None = None
    smallest_encrypted: FileEntry | None = None


def survey(entries: Iterable[FileEntry], *, in_order: bool) -> _Survey:
    """One pass: a path conflict (:func:`path_conflict`), the first entry recording an
    owner, the smallest encrypted object. ``in_order``: the entries come in strictly
    increasing path order (schema_version 2, checked as read), so only the symlinks
    are kept in memory; otherwise every path is (schema_version 1, already in memory)."""
    found = _Survey()
    listed: list[FileEntry] = []
    links: set[str] = set()
    for entry in entries:
        if not in_order:
            listed.append(entry)
        elif found.conflict is None:
            found.conflict = _under_link(entry.path, links)
        if entry.type == "symlink":
            links.add(entry.path)
        if found.first_owned is None and (entry.uid is not None or entry.owner is not None):
            found.first_owned = entry
        if entry.sha256 is not None and is_encrypted(entry.stored):
            smallest = found.smallest_encrypted
            if smallest is None or (entry.stored_size or 0) < (smallest.stored_size or 0):
                found.smallest_encrypted = entry
    if not in_order:
        found.conflict = path_conflict(listed)
    return found


def _under_link(path: str, links: set[str]) -> str | None:
    if not links:
        return None
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
        self.local = storage.local_root is not None

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


def restore_threads(reader: ObjectReader, target: RestoreTarget, configured: int) -> int:
    """Pure: how many files are restored at once. ``configured`` (``storage.max_concurrency``)
    when the repository or the target is an S3 store (each file waits on the network);
    one when both are local, where more threads only take turns at the interpreter lock
    (docs/benchmarks.md: 62,712 small files restored in 24.2 s by one, 32.9 s by four)."""
    local = reader.storage.local_root is not None and target.local
    return 1 if local else configured


def restore_to(
    reader: ObjectReader,
    snapshot: Snapshot,
    target: RestoreTarget,
    reporter: Reporter,
    *,
    force: bool = False,
    strict: bool = True,
    workers: int | None = None,
) -> RestoreSummary:
    """Restore every entry of ``snapshot`` into ``target``. A file that does not verify is
    not written; the others are. With ``strict`` (the default), an IntegrityError naming
    the failed files follows; otherwise they are listed in the summary. A missing or
    wrong identity (encrypted objects) is a ConfigError before anything is written.
    ``workers``: files restored at once (default: :func:`restore_threads` of four)."""
    if workers is None:
        workers = restore_threads(reader, target, 4)
    if not force and not target.is_empty():
        raise Refused(
            f"restore target {target.display} is not empty",
            hint="restore into an empty directory or pass --force to overwrite",
        )
    storage = reader.storage
    # a first pass writes nothing: an inconsistent snapshot (or a damaged chunk, an
    # IntegrityError raised here) restores nothing
    found = survey(iter_entries(storage, snapshot), in_order=snapshot.chunked)
    if found.conflict is not None:
        raise IntegrityError(
            f"snapshot {snapshot.id} is inconsistent: {found.conflict}; nothing was restored",
            hint="no backup writes such a snapshot: it was altered in the repository",
        )
    started = time.monotonic()
    summary = RestoreSummary(snapshot.id, target.display)
    if found.smallest_encrypted is not None:
        reader.check_identity([found.smallest_encrypted])
    target.prepare(found.first_owned)
    lock = threading.Lock()
    with reporter.task(f"restore {snapshot.source_name}", total=snapshot.total_bytes) as advance:

        def files() -> Iterator[FileEntry]:
            """The file entries; symlinks are written as they pass."""
            for entry in iter_entries(storage, snapshot):
                if entry.type != "symlink":
                    yield entry
                elif target.write_symlink(entry):
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

        for _ in ordered_map(one, files(), workers=workers, window=workers * 4, name="restore"):
            pass
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
