"""Pure: which items of a source must be read, and which entries of the previous
snapshot can stand for them unread (size+mtime, or ETag+size for S3 sources).

``backup files`` plans as a stream (:func:`plan_stream`): a merge-join of the sorted
listing with the previous snapshot's sorted entries, never a dict of every entry."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from backdrill.files.ownership import with_owner
from backdrill.files.snapshot import FileEntry, SkippedEntry, Snapshot, is_encrypted
from backdrill.files.source import SourceItem
from backdrill.runtime.errors import UsageError


@dataclass
class BackupPlan:
    #: entries carried over from the previous snapshot (their content is not read)
    reused: list[FileEntry] = field(default_factory=list)
    #: symlinks: recorded from the scan, nothing to read
    links: list[FileEntry] = field(default_factory=list)
    to_read: list[SourceItem] = field(default_factory=list)


def previous_entries(previous: Snapshot | None) -> dict[str, FileEntry]:
    if previous is None:
        return {}
    return {e.path: e for e in previous.entries if e.type == "file"}


class Sizes(Protocol):
    def get(self, key: str, /) -> int | None: ...


def reusable(
    entry: FileEntry,
    stored: Sizes,
    *,
    encrypted: bool,
    packs: Mapping[str, int] | None = None,
) -> bool:
    """The object of ``entry`` is still stored with its recorded size (a packed one:
    its pack, ``packs`` maps pack id -> size, is listed and long enough), in the form
    this backup writes (encrypted or not: a plaintext object never stands in an
    encrypted snapshot, nor the reverse)."""
    if entry.sha256 is None or is_encrypted(entry.stored) != encrypted:
        return False
    if entry.pack is not None:
        if packs is None or entry.offset is None or entry.stored_size is None:
            return False
        return packs.get(entry.pack, -1) >= entry.offset + entry.stored_size
    return stored.get(entry.sha256) == entry.stored_size


def unchanged(item: SourceItem, entry: FileEntry) -> bool:
    if entry.status != "ok" or entry.size != item.size or entry.sha256 is None:
        return False
    if item.etag is not None:
        return entry.etag == item.etag
    return entry.mtime_ns == item.mtime_ns


def link_entry(item: SourceItem) -> FileEntry:
    link = FileEntry(
        path=item.path,
        type="symlink",
        size=0,
        mtime_ns=item.mtime_ns,
        mode=item.mode,
        target=item.target,
    )
    return with_owner(link, item.owner)


def decide(
    item: SourceItem,
    entry: FileEntry | None,
    stored: Sizes,
    *,
    encrypted: bool = False,
    rehash: bool = False,
    packs: Mapping[str, int] | None = None,
) -> FileEntry | None:
    """The entry that stands for ``item`` unread (a symlink's, or the previous one of
    the same path, ``entry``), or None: read it. ``stored`` maps the sha256 of every
    object of this backup's form (encrypted or not) in the repository to its size: an
    entry is reused only when its object (or its pack, in ``packs``: pack id -> size)
    is still there with the recorded size."""
    if item.kind == "symlink":
        return link_entry(item)
    if (
        not rehash
        and entry is not None
        and entry.type == "file"
        and unchanged(item, entry)
        and reusable(entry, stored, encrypted=encrypted, packs=packs)
    ):
        same_mode = entry.mode == item.mode
        kept = entry if same_mode else entry.model_copy(update={"mode": item.mode})
        return with_owner(kept, item.owner)  # chown leaves mtime alone
    return None


def plan_backup(
    items: Iterable[SourceItem],
    previous: Mapping[str, FileEntry],
    stored: Sizes,
    *,
    encrypted: bool = False,
    rehash: bool = False,
) -> BackupPlan:
    """The whole plan at once (small sources, tests): see :func:`decide`."""
    plan = BackupPlan()
    for item in items:
        kept = decide(item, previous.get(item.path), stored, encrypted=encrypted, rehash=rehash)
        if kept is None:
            plan.to_read.append(item)
        elif kept.type == "symlink":
            plan.links.append(kept)
        else:
            plan.reused.append(kept)
    return plan


def merge_join(
    found: Iterable[SourceItem | SkippedEntry], previous: Iterable[FileEntry]
) -> Iterator[tuple[SourceItem | SkippedEntry, FileEntry | None]]:
    """Pure: each item of the listing ``found`` with the previous entry of its path (or
    None), both streams in strictly increasing path order. A source listed out of order
    is a UsageError (merging it would silently re-read everything)."""
    prev = iter(previous)
    head = next(prev, None)
    last: str | None = None
    for item in found:
        if isinstance(item, SkippedEntry):
            yield item, None
            continue
        if last is not None and item.path <= last:
            raise UsageError(
                f"the files source listed {item.path!r} after {last!r}: not in path order"
            )
        last = item.path
        while head is not None and head.path < item.path:
            head = next(prev, None)
        match = head if head is not None and head.path == item.path else None
        yield item, match
