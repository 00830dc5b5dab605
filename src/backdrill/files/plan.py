"""Pure: which items of a source must be read, and which entries of the previous
snapshot can stand for them unread (size+mtime, or ETag+size for S3 sources)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from backdrill.files.ownership import with_owner
from backdrill.files.snapshot import FileEntry, Snapshot, is_encrypted
from backdrill.files.source import SourceItem


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


def reusable(entry: FileEntry, stored: Mapping[str, int], *, encrypted: bool) -> bool:
    """The object of ``entry`` is still stored with its recorded size, in the form this
    backup writes (encrypted or not: a plaintext object never stands in an encrypted
    snapshot, nor the reverse)."""
    return (
        entry.sha256 is not None
        and is_encrypted(entry.stored) == encrypted
        and stored.get(entry.sha256) == entry.stored_size
    )


def unchanged(item: SourceItem, entry: FileEntry) -> bool:
    if entry.status != "ok" or entry.size != item.size or entry.sha256 is None:
        return False
    if item.etag is not None:
        return entry.etag == item.etag
    return entry.mtime_ns == item.mtime_ns


def plan_backup(
    items: Iterable[SourceItem],
    previous: Mapping[str, FileEntry],
    stored: Mapping[str, int],
    *,
    encrypted: bool = False,
    rehash: bool = False,
) -> BackupPlan:
    """``stored`` maps the sha256 of every object of this backup's form (encrypted or
    not) in the repository to its size: an entry is reused only when its object is
    still there with the recorded size."""
    plan = BackupPlan()
    for item in items:
        if item.kind == "symlink":
            link = FileEntry(
                path=item.path,
                type="symlink",
                size=0,
                mtime_ns=item.mtime_ns,
                mode=item.mode,
                target=item.target,
            )
            plan.links.append(with_owner(link, item.owner))
            continue
        entry = previous.get(item.path)
        if (
            not rehash
            and entry is not None
            and unchanged(item, entry)
            and reusable(entry, stored, encrypted=encrypted)
        ):
            same_mode = entry.mode == item.mode
            kept = entry if same_mode else entry.model_copy(update={"mode": item.mode})
            plan.reused.append(with_owner(kept, item.owner))  # chown leaves mtime alone
        else:
            plan.to_read.append(item)
    return plan
