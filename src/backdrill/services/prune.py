"""``prune``: apply retention per scope, sweep unreferenced filestore objects, and remove
orphans (uncommitted backup directories, open multipart uploads, ``.partial-*`` files).

Safety rules, in order:

- nothing at all is deleted while any manifest or snapshot is unreadable (exit 4);
- ``prune`` holds the repository lock and each scope's lock; a scope whose backup is
  running is skipped and reported; while any files backup runs (of any source, a new
  one included: ``locks/files-*``) the object sweep waits for another day;
- the newest backups are never deleted (:mod:`backdrill.retention`), the oldest go first,
  the commit marker before its objects, so a half-deleted backup is never "committed";
- objects under object lock retention or legal hold are skipped and reported;
- orphans and unreferenced objects younger than ``retention.grace_hours`` stay.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from backdrill.catalog import DB_ROOT, BrokenEntry, backup_dir, db_dir, list_db_backups
from backdrill.errors import IntegrityError, LockHeld
from backdrill.files.addrset import KeySet
from backdrill.files.snapshot import CONTENT_PREFIXES, FILES_ROOT
from backdrill.lockinfo import LockInfo
from backdrill.locks import LOCKS_ROOT, REPOSITORY_SCOPE, RepoLock, files_scope, live_holders
from backdrill.retention import Decision, Item, Policy, decide
from backdrill.services.context import RunContext
from backdrill.services.prune_scopes import (
    DbScope,
    Entry,
    FilesScope,
    GlobalsScope,
    Scope,
    ScopeListing,
    file_sources,
)
from backdrill.storage.base import ObjectInfo, Storage
from backdrill.timeutil import isoformat, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EntryOutcome:
    scope: str
    id: str
    created_at: datetime
    action: str  # keep | delete | locked
    rule: str
    bytes: int
    detail: str = ""


@dataclass(frozen=True)
class OrphanOutcome:
    key: str
    kind: str  # uncommitted | pending upload | unreferenced object
    action: str  # delete | locked
    bytes: int
    detail: str = ""


@dataclass
class PruneReport:
    dry_run: bool
    now: datetime
    entries: list[EntryOutcome] = field(default_factory=list)
    orphans: list[OrphanOutcome] = field(default_factory=list)
    skipped_scopes: dict[str, str] = field(default_factory=dict)
    young_unreferenced: int = 0

    @property
    def bytes_freed(self) -> int:
        deleted = [e.bytes for e in self.entries if e.action == "delete"]
        deleted += [o.bytes for o in self.orphans if o.action == "delete"]
        return sum(deleted)

    @property
    def locked(self) -> list[str]:
        locked = [f"{e.scope}/{e.id}: {e.detail}" for e in self.entries if e.action == "locked"]
        return locked + [f"{o.key}: {o.detail}" for o in self.orphans if o.action == "locked"]

    def to_dict(self) -> dict[str, Any]:
        def entry(e: EntryOutcome) -> dict[str, Any]:
            doc = asdict(e)
            doc["created_at"] = isoformat(e.created_at)
            return doc

        return {
            "dry_run": self.dry_run,
            "now": isoformat(self.now),
            "kept": [entry(e) for e in self.entries if e.action == "keep"],
            "deleted": [entry(e) for e in self.entries if e.action == "delete"],
            "locked": [entry(e) for e in self.entries if e.action == "locked"],
            "orphans": [asdict(o) for o in self.orphans],
            "skipped_scopes": self.skipped_scopes,
            "young_unreferenced_objects": self.young_unreferenced,
            "bytes_freed": self.bytes_freed,
        }


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
        self.policy = Policy.from_config(ctx.config.retention)
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
        decisions = plan_scope(listing, self.policy, self.now)
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
        for prefix in CONTENT_PREFIXES:
            for info in self.storage.list_objects(prefix):
                if info.key in marks:
                    continue
                if not self._old(info.last_modified):
                    self.report.young_unreferenced += 1
                    continue
                self._orphan([info.key], "unreferenced object", info.size, info.key)


@contextlib.contextmanager
def _scope_locks(
    ctx: RunContext, scopes: list[Scope], report: PruneReport, dry_run: bool
) -> Iterator[set[str]]:
    """Take each scope's lock; yield the names of the scopes whose backup is running."""
    skipped: set[str] = set()
    with contextlib.ExitStack() as stack:
        for scope in scopes:
            if dry_run or scope.lock_scope is None:
                continue
            lock = RepoLock(ctx.storage, scope.lock_scope, run_id=ctx.run_id, command="prune")
            try:
                stack.enter_context(lock)
            except LockHeld as exc:
                skipped.add(scope.name)
                report.skipped_scopes[scope.name] = str(exc)
                log.warning("skipping %s: %s", scope.name, exc)
        yield skipped


def _running_files_backups(ctx: RunContext) -> list[str]:
    """The files backups running now, whatever their source, but this prune's own locks."""
    return [
        f"{key[len(LOCKS_ROOT) :]}: {h.describe()}"
        for key, h in live_holders(ctx.storage, files_scope(""))
        if not (isinstance(h, LockInfo) and h.command == "prune" and h.run_id == ctx.run_id)
    ]


def _listing(storage: Storage) -> dict[str, ObjectInfo]:
    """Every key but the locks and the filestore's content objects and chunks (swept
    from a listing of their own, streamed: :meth:`_Pruner.sweep`)."""
    return {
        i.key: i
        for i in storage.list_objects("")
        if not i.key.startswith((LOCKS_ROOT, *CONTENT_PREFIXES))
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
    storage = ctx.storage
    objects = _listing(storage)
    catalog = list_db_backups(storage)
    databases = sorted(
        {m.database for m in catalog.backups}
        | {db for db, _id in catalog.uncommitted}
        | {unquote(b.key[len(DB_ROOT) :].split("/")[0]) for b in catalog.broken}
        # a backup killed before any object committed leaves only a pending upload
        | {unquote(p.key[len(DB_ROOT) :].split("/")[0]) for p in storage.pending_uploads(DB_ROOT)}
    )
    db_scopes = [DbScope(db, catalog, objects) for db in databases]
    files_scopes = [FilesScope(src, storage, objects) for src in file_sources(objects)]
    scopes: list[Scope] = [*db_scopes, *files_scopes, GlobalsScope(objects)]
    listings = {scope.name: scope.listing() for scope in scopes}
    if broken := _all_broken(catalog.broken, listings):
        raise _refuse(broken)
    pruner = _Pruner(ctx, dry_run, now)
    with _scope_locks(ctx, scopes, pruner.report, dry_run) as skipped, KeySet() as marks:
        # a files backup of any source, one without a snapshot yet included, may reuse
        # any old object: no sweep while one holds its lock (read BEFORE the re-read)
        running = _running_files_backups(ctx)
        # re-read under the scope locks: a backup may have committed meanwhile
        if not dry_run:
            objects = _listing(storage)
            catalog = list_db_backups(storage)
            for db_scope in db_scopes:
                db_scope.catalog, db_scope.objects = catalog, objects
            for files_scope in files_scopes:
                files_scope.objects = objects
            listings = {scope.name: scope.listing() for scope in scopes}
            if broken := _all_broken(catalog.broken, listings):
                raise _refuse(broken)
        for scope in scopes:
            if scope.name in skipped:
                continue
            remaining = pruner.apply_scope(scope, listings[scope.name])
            scope.mark(remaining, marks)
        # a source whose first snapshot was committed since the first listing: its
        # objects are not in ``referenced``
        known = {s.source for s in files_scopes}
        running += [
            f"files/{n}: first snapshot committed meanwhile"
            for n in file_sources(objects)
            if n not in known
        ]
        for reason in running:
            pruner.report.skipped_scopes.setdefault("files/objects", reason)
        files_busy = bool(running) or any(s.name in skipped for s in files_scopes)
        if not files_busy:
            pruner.sweep(marks)
        busy_dbs = [s for s in db_scopes if s.name in skipped]
        dirs = [
            (db, backup_dir(db, backup_id))
            for db, backup_id in catalog.uncommitted
            if f"db/{db}" not in skipped
        ]
        pruner.uncommitted(dirs, objects)
        blocked = [db_dir(s.database) for s in busy_dbs]
        if files_busy:
            blocked.append(FILES_ROOT)
        pruner.pending(blocked)
    return pruner.report
