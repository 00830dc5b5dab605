"""``backup files``: an incremental, content-addressed snapshot of the filestore.

scan the source -> plan (reuse unchanged entries of the previous snapshot) -> read the
rest concurrently (hash while spooling; re-read once if it changed meanwhile) -> upload
contents the repository lacks (one listing pass says which) -> snapshot written LAST.
With ``storage.encryption``, contents are encrypted to the recipients (``.age``
objects; plaintext objects are never reused) and the snapshot stays in clear.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO

from backdrill import __version__
from backdrill.crypto import keys_for
from backdrill.errors import UsageError
from backdrill.files.catalog import latest_snapshot
from backdrill.files.objects import (
    SPOOL_IN_MEMORY,
    ObjectStore,
    listed_objects,
    new_spool,
    stored_objects,
)
from backdrill.files.ownership import with_owner
from backdrill.files.plan import plan_backup, previous_entries
from backdrill.files.pool import bounded_map
from backdrill.files.snapshot import (
    SCHEMA_VERSION,
    FileEntry,
    SkippedEntry,
    Snapshot,
)
from backdrill.files.source import DuringRead, FileSource, SourceItem, open_source
from backdrill.locks import REPOSITORY_SCOPE, RepoLock, files_scope, wait_until_free
from backdrill.progress import Advance
from backdrill.repository import layout
from backdrill.repository.layout import RESERVED_SOURCE_NAMES
from backdrill.services.context import RunContext
from backdrill.storage.local import make_dirs
from backdrill.timeutil import new_id, utcnow

log = logging.getLogger(__name__)

VANISHED = "vanished during backup"
UNREADABLE = "cannot read"
MAX_LOGGED = 20
LARGE_IN_FLIGHT = 2


@dataclass
class BackupFilesResult:
    snapshot: Snapshot
    reused: int
    warnings: list[str] = field(default_factory=list)

    @property
    def unreadable(self) -> list[SkippedEntry]:
        """Entries the backup could not read (not special files, not vanished ones): the
        snapshot is committed, but it is incomplete."""
        return [s for s in self.snapshot.skipped if s.reason.startswith("cannot ")]


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


def configured_source_name(ctx: RunContext) -> str | None:
    """The snapshot source name of the configured ``files -> source``; None if unset."""
    return layout.source_name(ctx.config.files.source, ctx.config.files.name)


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
        items: list[SourceItem] = []
        skipped: list[SkippedEntry] = []
        for found in self.source.scan():
            if isinstance(found, SkippedEntry):
                skipped.append(found)
            else:
                items.append(found)
        keys = keys_for(self.ctx.config.storage.encryption)  # public keys: enough to write
        encrypted = keys is not None
        stored = stored_objects(listed_objects(storage), encrypted=encrypted)
        store = ObjectStore(
            storage, stored, level=self.ctx.config.backup.compression_level, keys=keys
        )
        plan = plan_backup(
            items, previous_entries(previous), stored, encrypted=encrypted, rehash=self.rehash
        )
        log.info(
            "files backup of %s started",
            self.source.display,
            extra={
                "fields": {
                    "snapshot_id": snapshot_id,
                    "source_name": self.source_name,
                    "items": len(items),
                    "unchanged": len(plan.reused),
                    "to_read": len(plan.to_read),
                    "previous": previous.id if previous else None,
                    "encrypted": encrypted,
                }
            },
        )
        read_entries, read_skipped = self._read_all(plan.to_read, store)
        skipped.extend(read_skipped)
        entries = sorted([*plan.reused, *plan.links, *read_entries], key=lambda e: e.path)
        skipped.sort(key=lambda s: s.path)
        changed = sum(e.status == "changed" for e in entries)
        changed += sum(s.reason == VANISHED for s in skipped)
        snapshot = Snapshot(
            schema_version=SCHEMA_VERSION,
            id=snapshot_id,
            source=self.source.display,
            source_name=self.source_name,
            created_at=created_at,
            finished_at=utcnow(),
            file_count=sum(e.type == "file" for e in entries),
            total_bytes=sum(e.size for e in entries),
            new_objects=store.new_objects,
            new_bytes=store.new_bytes,
            uploaded_bytes=store.uploaded_bytes,
            files_read=self.stats.files,
            bytes_read=self.stats.bytes,
            changed_count=changed,
            skipped_count=len(skipped),
            run_id=self.ctx.run_id,
            host=self.ctx.host,
            backdrill_version=__version__,
            entries=entries,
            skipped=skipped,
        )
        storage.put_bytes(snapshot.key(), snapshot.encode())
        warnings = [f"skipped {s.path}: {s.reason}" for s in skipped]
        warnings += [
            f"{e.path} changed while it was read (twice); stored as last read"
            for e in entries
            if e.status == "changed"
        ]
        for warning in warnings[:MAX_LOGGED]:
            log.warning(warning)
        if len(warnings) > MAX_LOGGED:
            log.warning(
                "and %d more; see `backdrill show %s`", len(warnings) - MAX_LOGGED, snapshot.id
            )
        log.info(
            "files snapshot committed",
            extra={
                "fields": {
                    "snapshot_id": snapshot.id,
                    "source_name": snapshot.source_name,
                    "files": snapshot.file_count,
                    "unchanged": len(plan.reused),
                    "files_read": snapshot.files_read,
                    "new_objects": snapshot.new_objects,
                    "uploaded_bytes": snapshot.uploaded_bytes,
                    "changed": snapshot.changed_count,
                    "skipped": snapshot.skipped_count,
                    "seconds": round(
                        (snapshot.finished_at - snapshot.created_at).total_seconds(), 3
                    ),
                }
            },
        )
        return BackupFilesResult(snapshot, len(plan.reused), warnings)

    # -- reading and uploading ------------------------------------------------------
    def _read_all(
        self, items: list[SourceItem], store: ObjectStore
    ) -> tuple[list[FileEntry], list[SkippedEntry]]:
        entries: list[FileEntry] = []
        skipped: list[SkippedEntry] = []
        if not items:
            return entries, skipped
        total = sum(i.size for i in items)
        with self.ctx.reporter.task(f"back up {self.source_name}", total=total) as advance:
            results = bounded_map(
                lambda item: self._back_up_one(item, store, advance),
                items,
                workers=self.workers,
                name="files",
            )
        for result in results:
            if isinstance(result, SkippedEntry):
                skipped.append(result)
                continue
            assert result.sha256 is not None
            size = store.stored_size(result.sha256)
            entries.append(
                result.model_copy(
                    update={"stored_size": size, "stored": store.form_of(result.size, size)}
                )
            )
        return entries, skipped

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
                if store.claim(sha256):
                    store.upload(sha256, spool, outcome.size)
                # stored form and size are filled in once every upload has finished
                entry = FileEntry(
                    path=item.path,
                    size=outcome.size,
                    mtime_ns=outcome.mtime_ns,
                    mode=outcome.mode,
                    sha256=sha256,
                    etag=outcome.etag,
                    status="ok" if outcome.status == "ok" else "changed",
                )
                return with_owner(entry, item.owner)
        raise AssertionError("unreachable")


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
    of them, runs (:mod:`backdrill.locks`)."""
    spec, configured_name = resolve_source(ctx, source)
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
