"""``backup files``: an incremental, content-addressed snapshot of the filestore.

one stream: scan the source in path order -> merge it with the previous snapshot's
entries (reuse unchanged ones) -> read the rest concurrently, in a bounded window (hash
while spooling; re-read once if it changed meanwhile) -> upload contents the repository
lacks (one listing pass, kept on disk, says which; a small one into a pack, found again
through the packs' indexes, read only once a content must be looked up) -> entries cut
into chunks as they come, in order -> every pack written -> the snapshot root written
LAST (docs/format.md, schema_version 3).
With ``storage.encryption``, contents are encrypted to the recipients (``.age``
objects; plaintext objects are never reused) and the snapshot stays in clear.
"""

from __future__ import annotations

import contextlib
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
from backdrill.files.packs import BlobIndex, Location, PackListing, PackWriter, list_packs
from backdrill.files.plan import decide, merge_join
from backdrill.files.pool import Done, batched, grouped, ordered_map
from backdrill.files.snapshot import SCHEMA_VERSION, FileEntry, SkippedEntry, Snapshot
from backdrill.files.source import DuringRead, FileSource, SourceItem, open_source
from backdrill.repository.crypto import keys_for
from backdrill.repository.layout import FILES_CHUNKS_ROOT, RESERVED_SOURCE_NAMES
from backdrill.repository.locks import REPOSITORY_SCOPE, RepoLock, files_scope, wait_until_free
from backdrill.runtime.allocator import fix_mmap_threshold
from backdrill.runtime.errors import IntegrityError, UsageError
from backdrill.runtime.progress import Advance
from backdrill.runtime.timeutil import new_id, utcnow
from backdrill.services.backup_files_totals import (
    MAX_LOGGED,
    REPLACED,
    UNREADABLE,
    VANISHED,
    HashingSpool,
    ReadStats,
    Totals,
)
from backdrill.services.context import RunContext
from backdrill.storage.local import make_dirs

log = logging.getLogger(__name__)

LARGE_IN_FLIGHT = 2
#: items held in order between the listing and the chunks (read or reused)
WINDOW = 512
#: files read (or reused) per pool task: a task per file cost more than a small file
TASK_FILES = 16
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
        self.workers = source.reader_threads(ctx.config.storage.max_concurrency)
        self.stats = ReadStats()
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
        packs = list_packs(storage)  # a few hundred keys at 1,000,000 files
        blobs = BlobIndex(storage, packs, encrypted=encrypted)
        pack_writer = PackWriter(storage)
        with (
            stored_index(storage, encrypted=encrypted) as stored,
            contextlib.closing(blobs),
            contextlib.closing(pack_writer),
        ):
            store = ObjectStore(
                storage,
                stored,
                level=self.ctx.config.backup.compression_level,
                keys=keys,
                packs=pack_writer,
                blobs=blobs,
            )
            chunks = {info.key for info in storage.list_objects(FILES_CHUNKS_ROOT)}
            recent = RecentChunks()  # unchanged chunks are reused, not re-encoded
            entries_out = ChunkWriter(storage, chunks.__contains__, recent=recent)
            skipped_out = ChunkWriter(storage, chunks.__contains__, skipped=True)
            totals = Totals()
            planned = self._planned(previous, stored, encrypted, totals, recent, packs)
            with self.ctx.reporter.task(f"back up {self.source_name}") as advance:
                for results in ordered_map(
                    lambda group: [self._back_up_one(item, store, advance) for item in group],
                    grouped(planned, TASK_FILES),
                    workers=self.workers,
                    window=WINDOW // TASK_FILES,
                    name="files",
                ):
                    for result in results:
                        if isinstance(result, SkippedEntry):
                            totals.skip(result)
                            skipped_out.add(result)
                        else:
                            totals.entry(result)
                            entries_out.add(result)
            pack_writer.finish()  # every pack and its index before the root
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
        totals: Totals,
        recent: RecentChunks,
        packs: PackListing,
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
                if entry is not None
                and entry.sha256 is not None
                and entry.pack is None
                and not self.rehash
            )
            planned: list[SourceItem | Done[FileEntry | SkippedEntry]] = []
            to_read: list[SourceItem] = []
            for found, entry in batch:
                if isinstance(found, SkippedEntry):
                    planned.append(Done(found))
                    continue
                kept = decide(
                    found, entry, sizes, encrypted=encrypted, rehash=self.rehash, packs=packs.sizes
                )
                if kept is None:
                    planned.append(found)
                    to_read.append(found)
                    continue
                totals.reused += kept.type == "file"
                planned.append(Done(kept))
            # read ahead: the reader is up to WINDOW items behind, the disk busy meanwhile
            self.source.prefetch(to_read)
            yield from planned

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
                sink = HashingSpool(spool, advance)
                try:
                    outcome = self.source.read(item, sink.write, self.during_read)
                except OSError as exc:
                    return SkippedEntry(path=item.path, reason=f"{UNREADABLE}: {exc.strerror}")
                self.stats.add(outcome.size)
                if outcome.status == "replaced":
                    return SkippedEntry(path=item.path, reason=REPLACED)
                if outcome.status == "vanished":
                    if attempt == 2:
                        return SkippedEntry(path=item.path, reason=VANISHED)
                    continue
                if outcome.status == "changed" and attempt == 1:
                    continue
                sha256 = sink.digest.hexdigest()
                stored = self._store(store, sha256, spool, outcome.size)
                owner = item.owner
                # built from values of our own making: not validated again (a chunk's
                # entries are, when read)
                return FileEntry.model_construct(
                    path=item.path,
                    size=outcome.size,
                    mtime_ns=outcome.mtime_ns,
                    mode=outcome.mode,
                    sha256=sha256,
                    stored=stored.form or store.form_of(outcome.size, stored.stored_size),
                    stored_size=stored.stored_size,
                    etag=outcome.etag,
                    status="ok" if outcome.status == "ok" else "changed",
                    pack=stored.pack,
                    offset=stored.offset,
                    uid=owner.uid if owner else None,
                    gid=owner.gid if owner else None,
                    owner=owner.owner if owner else None,
                    group=owner.group if owner else None,
                )
        raise AssertionError("unreachable")

    @staticmethod
    def _store(store: ObjectStore, sha256: str, spool: IO[bytes], size: int) -> Location:
        """Where the content lies: stored now, or already (being) stored."""
        while True:
            if store.claim(sha256, size):
                return store.store(sha256, spool, size)
            stored = store.wait_stored(sha256, size)
            if stored is not None:
                return stored


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
