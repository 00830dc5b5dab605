"""``prune``: apply retention per scope, sweep unreferenced filestore objects, and remove
orphans (uncommitted backup directories, open multipart uploads, ``.partial-*`` files).

Safety rules, in order:

- nothing at all is deleted while any manifest or snapshot is unreadable (exit 4);
- ``prune`` holds the repository lock and each scope's lock; a scope whose backup is
  running is skipped and reported; while any files backup runs (of any source, a new
  one included: ``locks/files-*``) the object sweep waits for another day;
- the newest backups are never deleted (:mod:`backdrill.policy.retention`), the oldest go first,
  the commit marker before its objects, so a half-deleted backup is never "committed";
- objects under object lock retention or legal hold are skipped and reported;
- orphans and unreferenced objects younger than ``retention.grace_hours`` stay.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from backdrill.config.model import Config
from backdrill.config.sources import configured_sources, retention_of
from backdrill.files.addrset import KeySet
from backdrill.files.catalog import source_names
from backdrill.policy.retention import Decision, Item, Policy, decide
from backdrill.repository.catalog import BrokenEntry, DbListing, list_db_backups
from backdrill.repository.layout import (
    DB_ROOT,
    DEFAULT_SOURCE,
    FILES_CONTENT_ROOTS,
    FILES_OBJECTS_ROOT,
    FILES_ROOT,
    backup_dir,
    database_of,
    database_of_dir,
    db_dir,
    db_root,
    is_lock_key,
    lock_scope_of,
    source_of_dir,
    source_root,
)
from backdrill.repository.lockinfo import LockInfo
from backdrill.repository.locks import (
    REPOSITORY_SCOPE,
    RepoLock,
    db_scope,
    files_scope,
    live_holders,
)
from backdrill.runtime.errors import IntegrityError, LockHeld
from backdrill.runtime.timeutil import utcnow
from backdrill.services.context import RunContext
from backdrill.services.prune_report import EntryOutcome, OrphanOutcome, PruneReport
from backdrill.services.prune_scopes import (
    DbScope,
    Entry,
    FilesScope,
    GlobalsScope,
    Scope,
    ScopeListing,
    db_scope_name,
    file_sources,
)
from backdrill.storage.base import ObjectInfo, Storage

log = logging.getLogger(__name__)


def plan_scope(listing: ScopeListing, policy: Policy, now: datetime) -> list[Decision]:
    """Pure: retention over one scope's entries, refusing when any entry is unreadable."""
    items = [Item(e.id, e.created_at) for e in listing.entries]
    return decide(items, policy, now, unreadable=bool(listing.broken))


def _refuse(broken: list[BrokenEntry]) -> IntegrityError:
    names = "; ".join(f"{b.key} ({b.reason})" for b in broken)
    return IntegrityError(
        f"prune refuses to delete anything while {len(broken)} manifest(s) or snapshot(s) "
        f"are unreadable: {names}",
        hint="repair or remove them by hand (see `backdrill verify --all`), then prune again",
    )


def _all_broken(
    db_broken: list[BrokenEntry], listings: Mapping[str, ScopeListing]
) -> list[BrokenEntry]:
    """Every unreadable manifest of the catalogue, whatever scope it seems to belong to,
    and every unreadable snapshot."""
    found = {b.key: b for b in db_broken}
    for listing in listings.values():
        found.update({b.key: b for b in listing.broken})
    return sorted(found.values(), key=lambda b: b.key)


class _Pruner:
    def __init__(self, ctx: RunContext, dry_run: bool, now: datetime) -> None:
        self.ctx = ctx
        self.storage: Storage = ctx.storage
        self.dry_run = dry_run
        self.now = now
        self.grace = timedelta(hours=ctx.config.retention.grace_hours)
        self.report = PruneReport(dry_run, now)

    # -- deletion with the object lock check --------------------------------------------
    def _blockers(self, keys: Iterable[str]) -> str:
        found = []
        for key in keys:
            why = self.storage.deletion_blocker(key)
            if why:
                found.append(f"{key}: {why}")
        return "; ".join(found)

    def _delete(self, keys: Iterable[str]) -> None:
        if not self.dry_run:
            for key in keys:  # in order: the commit marker first
                self.storage.delete(key)

    def apply_scope(self, scope: Scope, listing: ScopeListing) -> list[Entry]:
        """Delete the expired entries, oldest first; return the entries that remain."""
        by_id = {e.id: e for e in listing.entries}
        remaining: list[Entry] = []
        policy = Policy.from_config(retention_of(self.ctx.config, scope.retention_source))
        decisions = plan_scope(listing, policy, self.now)
        for decision in sorted(decisions, key=lambda d: (d.created_at, d.id)):
            entry = by_id[decision.id]
            action, detail = "keep", ""
            if not decision.keep:
                detail = self._blockers(entry.keys)
                action = "locked" if detail else "delete"
                if action == "delete":
                    self._delete(entry.keys)
                    log.info(
                        "%s %s/%s",
                        "would delete" if self.dry_run else "deleted",
                        scope.name,
                        entry.id,
                        extra={"fields": {"rule": decision.rule, "bytes": entry.size}},
                    )
            if action != "delete":
                remaining.append(entry)
            self.report.entries.append(
                EntryOutcome(
                    scope.name,
                    entry.id,
                    entry.created_at,
                    action,
                    decision.rule,
                    entry.size,
                    detail,
                )
            )
        return remaining

    # -- orphans ---------------------------------------------------------------------
    def _old(self, moment: datetime) -> bool:
        return self.now - moment > self.grace

    def _orphan(self, keys: list[str], kind: str, size: int, label: str) -> None:
        detail = self._blockers(keys)
        action = "locked" if detail else "delete"
        if action == "delete":
            self._delete(keys)
        self.report.orphans.append(OrphanOutcome(label, kind, action, size, detail))

    def uncommitted(
        self, dirs: Iterable[tuple[str, str]], objects: Mapping[str, ObjectInfo]
    ) -> None:
        for prefix in dirs:
            keys = sorted(k for k in objects if k.startswith(prefix[1]))
            if not keys or not self._old(max(objects[k].last_modified for k in keys)):
                continue
            size = sum(objects[k].size for k in keys)
            self._orphan(keys, "uncommitted", size, prefix[1])

    def pending(self, blocked_prefixes: list[str]) -> None:
        for upload in self.storage.pending_uploads(""):
            if any(upload.key.startswith(p) for p in blocked_prefixes):
                continue
            if not self._old(upload.initiated):
                continue
            if not self.dry_run:
                self.storage.abort_pending(upload)
            self.report.orphans.append(
                OrphanOutcome(upload.key, "pending upload", "delete", 0, upload.upload_id)
            )

    def sweep(self, marks: KeySet) -> None:
        """Delete the unmarked content objects and chunks, streamed from the listing
        (millions of keys: never all in memory)."""
        for prefix in FILES_CONTENT_ROOTS:
            for info in self.storage.list_objects(prefix):
                if info.key in marks:
                    continue
                if not self._old(info.last_modified):
                    self.report.young_unreferenced += 1
                    continue
                self._orphan([info.key], "unreferenced object", info.size, info.key)


@contextlib.contextmanager
def _scope_locks(
    ctx: RunContext, names: _ScopeNames, report: PruneReport, dry_run: bool
) -> Iterator[set[str]]:
    """Take each scope's lock; yield the names of the scopes whose backup is running."""
    skipped: set[str] = set()
    with contextlib.ExitStack() as stack:
        for name, lock_scope in [] if dry_run else names.locks():
            lock = RepoLock(ctx.storage, lock_scope, run_id=ctx.run_id, command="prune")
            try:
                stack.enter_context(lock)
            except LockHeld as exc:
                skipped.add(name)
                report.skipped_scopes[name] = str(exc)
                log.warning("skipping %s: %s", name, exc)
        yield skipped


@dataclass(frozen=True)
class _ScopeNames:
    """The databases and filestore sources the repository holds, read before the scope
    locks from the directory names alone (the objects are listed once, under them)."""

    #: (PostgreSQL source, database)
    databases: list[tuple[str, str]]
    #: filestore sources
    sources: list[str]
    #: PostgreSQL sources whose globals are pruned
    pg_sources: list[str]

    def locks(self) -> list[tuple[str, str]]:
        """(scope name, lock scope) of every scope a backup locks."""
        return [(db_scope_name(db, src), db_scope(db, src)) for src, db in self.databases] + [
            (f"{FILES_ROOT}{src}", files_scope(src)) for src in self.sources
        ]


def _scope_names(storage: Storage, config: Config) -> _ScopeNames:
    pg_sources = [DEFAULT_SOURCE] + [
        source_of_dir(name) for name in storage.list_dirs(source_root(""))
    ]
    databases = {
        (src, database_of_dir(name))
        for src in pg_sources
        for name in storage.list_dirs(db_root(src))
    }
    # a backup killed before any object committed leaves only a pending upload
    databases |= {
        found
        for root in (DB_ROOT, source_root(""))
        for p in storage.pending_uploads(root)
        if (found := database_of(p.key)) is not None
    }
    configured = {s.name for s in configured_sources(config)}
    globals_of = sorted(configured | set(pg_sources) | {src for src, _db in databases})
    return _ScopeNames(sorted(databases), sorted(source_names(storage)), globals_of)


@dataclass(frozen=True)
class _Repository:
    """The repository as one listing under the scope locks saw it, and its scopes."""

    catalog: DbListing
    objects: dict[str, ObjectInfo]
    db_scopes: list[DbScope]
    files_scopes: list[FilesScope]
    globals_scopes: list[GlobalsScope]
    listings: dict[str, ScopeListing]

    @property
    def scopes(self) -> list[Scope]:
        return [*self.db_scopes, *self.files_scopes, *self.globals_scopes]


def _read_repository(storage: Storage, names: _ScopeNames) -> _Repository:
    """List the repository once: the catalogue, then every object (so that a first
    snapshot committed meanwhile is among the objects, see :func:`_unlocked_sources`);
    refuse (exit 4) while any manifest or snapshot is unreadable."""
    catalog = list_db_backups(storage)
    objects = _listing(storage)
    db_scopes = [DbScope(db, catalog, objects, src) for src, db in names.databases]
    files_scopes = [FilesScope(src, storage, objects) for src in names.sources]
    globals_scopes = [GlobalsScope(objects, src) for src in names.pg_sources]
    scopes: list[Scope] = [*db_scopes, *files_scopes, *globals_scopes]
    listings = {scope.name: scope.listing() for scope in scopes}
    if broken := _all_broken(catalog.broken, listings):
        raise _refuse(broken)
    return _Repository(catalog, objects, db_scopes, files_scopes, globals_scopes, listings)


def _unlocked_sources(repo: _Repository) -> list[str]:
    """Sources whose first snapshot was committed after the scope names were read: no
    scope knows them, so their objects are not among the referenced ones."""
    known = {s.source for s in repo.files_scopes}
    return [
        f"{FILES_ROOT}{n}: first snapshot committed meanwhile"
        for n in file_sources(repo.objects)
        if n not in known
    ]


def _running_files_backups(ctx: RunContext) -> list[str]:
    """The files backups running now, whatever their source, but this prune's own locks."""
    return [
        f"{lock_scope_of(key)}: {h.describe()}"
        for key, h in live_holders(ctx.storage, files_scope(""))
        if not (isinstance(h, LockInfo) and h.command == "prune" and h.run_id == ctx.run_id)
    ]


def _listing(storage: Storage) -> dict[str, ObjectInfo]:
    """Every key but the locks and the filestore's content objects and chunks (swept
    from a listing of their own, streamed: :meth:`_Pruner.sweep`)."""
    return {
        i.key: i
        for i in storage.list_objects("")
        if not is_lock_key(i.key) and not i.key.startswith(FILES_CONTENT_ROOTS)
    }


def run_prune(
    ctx: RunContext,
    *,
    dry_run: bool = False,
    wait: timedelta | None = None,
    now: datetime | None = None,
) -> PruneReport:
    lock: contextlib.AbstractContextManager[object] = (
        contextlib.nullcontext()
        if dry_run
        else RepoLock(ctx.storage, REPOSITORY_SCOPE, run_id=ctx.run_id, command="prune", wait=wait)
    )
    with lock:
        return _prune(ctx, dry_run, now or utcnow())


def _prune(ctx: RunContext, dry_run: bool, now: datetime) -> PruneReport:
    names = _scope_names(ctx.storage, ctx.config)
    pruner = _Pruner(ctx, dry_run, now)
    with _scope_locks(ctx, names, pruner.report, dry_run) as skipped, KeySet() as marks:
        # a files backup of any source, one without a snapshot yet included, may reuse
        # any old object: no sweep while one holds its lock (read BEFORE the listing)
        running = _running_files_backups(ctx)
        repo = _read_repository(ctx.storage, names)
        for scope in repo.scopes:
            if scope.name in skipped:
                continue
            remaining = pruner.apply_scope(scope, repo.listings[scope.name])
            scope.mark(remaining, marks)
        running += _unlocked_sources(repo)
        for reason in running:
            pruner.report.skipped_scopes.setdefault(FILES_OBJECTS_ROOT.rstrip("/"), reason)
        files_busy = bool(running) or any(s.name in skipped for s in repo.files_scopes)
        if not files_busy:
            pruner.sweep(marks)
        _remove_orphans(pruner, repo, skipped, files_busy=files_busy)
    return pruner.report


def _remove_orphans(
    pruner: _Pruner, repo: _Repository, skipped: set[str], *, files_busy: bool
) -> None:
    """Uncommitted backup directories and pending uploads, but those of busy scopes."""
    dirs = [
        (db, backup_dir(db, backup_id, src))
        for db, backup_id, src in repo.catalog.uncommitted
        if db_scope_name(db, src) not in skipped
    ]
    pruner.uncommitted(dirs, repo.objects)
    blocked = [db_dir(s.database, s.source) for s in repo.db_scopes if s.name in skipped]
    if files_busy:
        blocked.append(FILES_ROOT)
    pruner.pending(blocked)
