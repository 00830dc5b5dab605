"""``backup files``: an incremental, content-addressed snapshot of the filestore.

one stream: scan the source in path order -> merge it with the previous snapshot's
entries (reuse unchanged ones) -> read the rest concurrently, in a bounded window (hash
while spooling; re-read once if it changed meanwhile) -> upload contents the repository
lacks (one listing pass, kept on disk, says which) -> entries cut into chunks as they
come, in order -> the snapshot root written LAST (docs/format.md, schema_version 2).
With ``storage.encryption``, contents are encrypted to the recipients (``.age``
objects; plaintext objects are never reused) and the snapshot stays in clear.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO

from backdrill import __version__
from backdrill.files.addrset import KeySet
from backdrill.files.catalog import latest_snapshot
from backdrill.files.chunks import ChunkWriter, RecentChunks, iter_entries
from backdrill.files.objects import SPOOL_IN_MEMORY, ObjectStore, new_spool, stored_index
from backdrill.files.ownership import with_owner
from backdrill.files.plan import decide, merge_join
from backdrill.files.pool import Done, batched, ordered_map
from backdrill.files.snapshot import SCHEMA_VERSION, FileEntry, SkippedEntry, Snapshot
from backdrill.files.source import DuringRead, FileSource, SourceItem, open_source
from backdrill.repository.crypto import keys_for
from backdrill.repository.layout import FILES_CHUNKS_ROOT, RESERVED_SOURCE_NAMES
from backdrill.repository.locks import REPOSITORY_SCOPE, RepoLock, files_scope, wait_until_free
from backdrill.runtime.allocator import fix_mmap_threshold
from backdrill.runtime.errors import IntegrityError, UsageError
from backdrill.runtime.progress import Advance
from backdrill.runtime.timeutil import new_id, utcnow
from backdrill.services.context import RunContext
from backdrill.storage.local import make_dirs

log = logging.getLogger(__name__)

VANISHED = "vanished during backup"
UNREADABLE = "cannot read"
MAX_LOGGED = 20
LARGE_IN_FLIGHT = 2
#: items held in order between the listing and the chunks (read or reused)
WINDOW = 512
#: pairs of the merge-join planned together (their stored objects looked up at once)
LOOKUP_BATCH = 256


@dataclass
class BackupFilesResult:
    snapshot: Snapshot
    reused: int
    #: the first :data:`MAX_LOGGED` warnings (every one is logged or counted)
    warnings: list[str] = field(default_factory=list)
    #: entries the backup could not read (not special files, not vanished ones): the
    #: snapshot is committed, but it is incomplete; the first :data:`MAX_LOGGED`
    unreadable: list[SkippedEntry] = field(default_factory=list)
    unreadable_count: int = 0


@dataclass
class _Totals:
    """What the snapshot root records, counted as entries stream past."""

    files: int = 0
    bytes: int = 0
    changed: int = 0
    skipped: int = 0
    reused: int = 0
    warnings: list[str] = field(default_factory=list)
    warning_count: int = 0
    unreadable: list[SkippedEntry] = field(default_factory=list)
    unreadable_count: int = 0

    def warn(self, text: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < MAX_LOGGED:
            self.warnings.append(text)
            log.warning(text)

    def entry(self, entry: FileEntry) -> None:
        if entry.type == "file":
            self.files += 1
        self.bytes += entry.size
        if entry.status == "changed":
            self.changed += 1
            self.warn(f"{entry.path} changed while it was read (twice); stored as last read")

    def skip(self, skipped: SkippedEntry) -> None:
        self.skipped += 1
        self.changed += skipped.reason == VANISHED
        if skipped.reason.startswith("cannot "):
            self.unreadable_count += 1
            if len(self.unreadable) < MAX_LOGGED:
                self.unreadable.append(skipped)
        self.warn(f"skipped {skipped.path}: {skipped.reason}")


@dataclass
class _ReadStats:
    files: int = 0
    bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, size: int) -> None:
        with self.lock:
            self.files += 1
            self.bytes += size


class _HashingSpool:
    def __init__(self, spool: IO[bytes], advance: Advance) -> None:
        self.spool = spool
        self.advance = advance
        self.digest = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.spool.write(chunk)
        self.advance(len(chunk))


def resolve_source(ctx: RunContext, source: str | None) -> tuple[str, str | None]:
    """The source to back up and the configured name that applies to it, if any."""
    files = ctx.config.files
    chosen = source or files.source
    if not chosen:
        raise UsageError(
            "no files source to back up", hint="pass --source DIR|s3://… or set files -> source"
        )
    name = files.name if (source is None or source == files.source) else None
    return chosen, name


class FileBackup:
    """One run of ``backup files``; ``during_read`` is the test seam of the reader."""

    def __init__(
        self,
        ctx: RunContext,
        source: FileSource,
        source_name: str,
        *,
        rehash: bool = False,
        during_read: DuringRead | None = None,
    ) -> None:
        if source_name in RESERVED_SOURCE_NAMES:
            raise UsageError(f"files source name {source_name!r} is reserved; set files -> name")
        self.ctx = ctx
        self.source = source
        self.source_name = source_name
        self.rehash = rehash
        self.during_read = during_read
        self.workers = ctx.config.storage.max_concurrency
        self.stats = _ReadStats()
        self._large_slots = threading.BoundedSemaphore(LARGE_IN_FLIGHT)

    def run(self) -> BackupFilesResult:
        storage = self.ctx.storage
        created_at = utcnow()
        snapshot_id = new_id(created_at)
        previous = latest_snapshot(storage, self.source_name)
        keys = keys_for(self.ctx.config.storage.encryption)  # public keys: enough to write
        encrypted = keys is not None
        log.info(
            "files backup of %s started",
            self.source.display,
            extra={
                "fields": {
                    "snapshot_id": snapshot_id,
                    "source_name": self.source_name,
                    "previous": previous.id if previous else None,
                    "encrypted": encrypted,
                }
            },
        )
        with stored_index(storage, encrypted=encrypted) as stored:
            store = ObjectStore(
                storage, stored, level=self.ctx.config.backup.compression_level, keys=keys
            )
            chunks = {info.key for info in storage.list_objects(FILES_CHUNKS_ROOT)}
            recent = RecentChunks()  # unchanged chunks are reused, not re-encoded
            entries_out = ChunkWriter(storage, chunks.__contains__, recent=recent)
            skipped_out = ChunkWriter(storage, chunks.__contains__, skipped=True)
            totals = _Totals()
            planned = self._planned(previous, stored, encrypted, totals, recent)
            with self.ctx.reporter.task(f"back up {self.source_name}") as advance:
                for result in ordered_map(
                    lambda item: self._back_up_one(item, store, advance),
                    planned,
                    workers=self.workers,
                    window=WINDOW,
                    name="files",
                ):
                    if isinstance(result, SkippedEntry):
                        totals.skip(result)
                        skipped_out.add(result)
                    else:
                        totals.entry(result)
                        entries_out.add(result)
            chunks_of_entries = entries_out.finish()
            reused_chunks = entries_out.reused_chunks
            chunks_of_skipped = skipped_out.finish()
            snapshot = Snapshot(
                schema_version=SCHEMA_VERSION,
                id=snapshot_id,
                source=self.source.display,
                source_name=self.source_name,
                created_at=created_at,
                finished_at=utcnow(),
                file_count=totals.files,
                total_bytes=totals.bytes,
                new_objects=store.new_objects,
                new_bytes=store.new_bytes,
                uploaded_bytes=store.uploaded_bytes,
                new_chunks=entries_out.new_chunks + skipped_out.new_chunks,
                files_read=self.stats.files,
                bytes_read=self.stats.bytes,
                changed_count=totals.changed,
                skipped_count=totals.skipped,
                run_id=self.ctx.run_id,
                host=self.ctx.host,
                backdrill_version=__version__,
                chunks=chunks_of_entries,
                skipped_chunks=chunks_of_skipped,
            )
        storage.put_bytes(snapshot.key(), snapshot.encode())
        if totals.warning_count > MAX_LOGGED:
            log.warning(
                "and %d more; see `backdrill show %s`",
                totals.warning_count - MAX_LOGGED,
                snapshot.id,
            )
        log.info(
            "files snapshot committed",
            extra={
                "fields": {
                    "snapshot_id": snapshot.id,
                    "source_name": snapshot.source_name,
                    "files": snapshot.file_count,
                    "unchanged": totals.reused,
                    "files_read": snapshot.files_read,
                    "new_objects": snapshot.new_objects,
                    "uploaded_bytes": snapshot.uploaded_bytes,
                    "new_chunks": snapshot.new_chunks,
                    "reused_chunks": reused_chunks,
                    "changed": snapshot.changed_count,
                    "skipped": snapshot.skipped_count,
                    "seconds": round(
                        (snapshot.finished_at - snapshot.created_at).total_seconds(), 3
                    ),
                }
            },
        )
        return BackupFilesResult(
            snapshot,
            totals.reused,
            totals.warnings,
            totals.unreadable,
            totals.unreadable_count,
        )

    # -- planning, reading and uploading ----------------------------------------------
    def _planned(
        self,
        previous: Snapshot | None,
        stored: KeySet,
        encrypted: bool,
        totals: _Totals,
        recent: RecentChunks,
    ) -> Iterator[SourceItem | Done[FileEntry | SkippedEntry]]:
        """The listing merged with the previous snapshot: what stands unread (``Done``)
        and what must be read (the item)."""
        earlier = self._previous_files(previous, recent)
        for batch in batched(merge_join(self.source.scan(), earlier), LOOKUP_BATCH):
            # the objects this batch may reuse, looked up at once (one query, not one
            # per file: the index is a SQLite file of every object in the repository)
            sizes = stored.get_many(
                entry.sha256
                for found, entry in batch
                if entry is not None and entry.sha256 is not None and not self.rehash
            )
            for found, entry in batch:
                if isinstance(found, SkippedEntry):
                    yield Done(found)
                    continue
                kept = decide(found, entry, sizes, encrypted=encrypted, rehash=self.rehash)
                if kept is None:
                    yield found
                    continue
                totals.reused += kept.type == "file"
                yield Done(kept)

    def _previous_files(
        self, previous: Snapshot | None, recent: RecentChunks
    ) -> Iterator[FileEntry]:
        """The previous snapshot's entries, streamed; a damaged chunk ends them (what
        follows is read again) with a warning, not the backup."""
        if previous is None:
            return
        try:
            yield from iter_entries(self.ctx.storage, previous, recent)
        except IntegrityError as exc:
            log.warning("previous snapshot unusable past a point, reading the rest: %s", exc)

    def _back_up_one(
        self, item: SourceItem, store: ObjectStore, advance: Advance
    ) -> FileEntry | SkippedEntry:
        if item.size <= SPOOL_IN_MEMORY:
            return self._read_and_store(item, store, advance)
        # a large file spools to temporary files (raw, then compressed): at most
        # LARGE_IN_FLIGHT of them at once bounds the temporary disk space used
        with self._large_slots:
            return self._read_and_store(item, store, advance)

    def _read_and_store(
        self, item: SourceItem, store: ObjectStore, advance: Advance
    ) -> FileEntry | SkippedEntry:
        for attempt in (1, 2):
            with new_spool() as spool:
                sink = _HashingSpool(spool, advance)
                try:
                    outcome = self.source.read(item, sink.write, self.during_read)
                except OSError as exc:
                    return SkippedEntry(path=item.path, reason=f"{UNREADABLE}: {exc.strerror}")
                self.stats.add(outcome.size)
                if outcome.status == "vanished":
                    if attempt == 2:
                        return SkippedEntry(path=item.path, reason=VANISHED)
                    continue
                if outcome.status == "changed" and attempt == 1:
                    continue
                sha256 = sink.digest.hexdigest()
                stored_size = self._store(store, sha256, spool, outcome.size)
                entry = FileEntry(
                    path=item.path,
                    size=outcome.size,
                    mtime_ns=outcome.mtime_ns,
                    mode=outcome.mode,
                    sha256=sha256,
                    stored=store.form_of(outcome.size, stored_size),
                    stored_size=stored_size,
                    etag=outcome.etag,
                    status="ok" if outcome.status == "ok" else "changed",
                )
                return with_owner(entry, item.owner)
        raise AssertionError("unreachable")

    @staticmethod
    def _store(store: ObjectStore, sha256: str, spool: IO[bytes], size: int) -> int:
        """The stored size of the content: uploaded now, or already (being) stored."""
        while True:
            if store.claim(sha256):
                return store.upload(sha256, spool, size).stored_size
            stored_size = store.wait_stored(sha256)
            if stored_size is not None:
                return stored_size


def run_backup_files(
    ctx: RunContext,
    *,
    source: str | None = None,
    rehash: bool = False,
    wait: timedelta | None = None,
    during_read: DuringRead | None = None,
) -> BackupFilesResult:
    """Back up one filestore source under its lock (``locks/files-<name>``), once no
    prune runs: prune does not sweep objects while a files backup, which may reuse any
    of them, runs (:mod:`backdrill.repository.locks`)."""
    spec, configured_name = resolve_source(ctx, source)
    fix_mmap_threshold()  # else glibc's free space grows with the count of files
    files_source = open_source(spec, ctx.config.files.s3)
    try:
        name = configured_name or files_source.name
        backup = FileBackup(ctx, files_source, name, rehash=rehash, during_read=during_read)
        if ctx.storage.local_root is not None:  # the first backup creates the repository
            make_dirs(ctx.storage.local_root)
        lock = RepoLock(
            ctx.storage, files_scope(name), run_id=ctx.run_id, command="backup files", wait=wait
        )
        with lock:
            # then, and only then, no prune may be running: one that started before
            # our lock existed may not have seen it, and would sweep what we reuse
            wait_until_free(ctx.storage, REPOSITORY_SCOPE, wait=wait)
            return backup.run()
    finally:
        files_source.close()
