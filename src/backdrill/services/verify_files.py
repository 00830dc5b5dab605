"""``verify`` of filestore snapshots: every referenced object exists with the size the
snapshot records (one listing pass); with ``--read-data`` (or a random subset of the
objects, as restic's ``--read-data-subset``) each is downloaded, decompressed and
re-hashed. Each problem names the file(s) it damages."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from backdrill.errors import IntegrityError
from backdrill.files.objects import copy_object, stored_objects
from backdrill.files.restore import FailedFile
from backdrill.files.snapshot import FileEntry, Snapshot, object_key
from backdrill.progress import NullReporter, Reporter
from backdrill.storage import Storage


@dataclass
class SnapshotVerification:
    snapshot_id: str
    source_name: str
    objects: int = 0
    objects_read: int = 0
    bytes_read: int = 0
    failed: list[FailedFile] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def parse_subset(text: str) -> float:
    """``10%`` or ``10`` -> 0.1; ValueError outside (0, 100]."""
    number = float(text.strip().removesuffix("%"))
    if not 0 < number <= 100:
        raise ValueError("must be a percentage in (0, 100]")
    return number / 100


def pick_subset(shas: Sequence[str], fraction: float, rng: random.Random) -> list[str]:
    """ceil(fraction x n) distinct objects (at least one), drawn with ``rng``."""
    if fraction >= 1:
        return list(shas)
    count = min(len(shas), max(1, math.ceil(fraction * len(shas))))
    return rng.sample(list(shas), count)


def _objects_of(snapshot: Snapshot) -> dict[str, list[FileEntry]]:
    by_sha: dict[str, list[FileEntry]] = {}
    for entry in snapshot.files():
        if entry.sha256 is not None:
            by_sha.setdefault(entry.sha256, []).append(entry)
    return by_sha


def check_presence(
    stored: dict[str, int], snapshot: Snapshot
) -> tuple[list[FailedFile], list[str]]:
    """Pure: the files whose object is missing or has the wrong size, and the sha256 of
    the objects that are present."""
    failed: list[FailedFile] = []
    present: list[str] = []
    for sha, entries in sorted(_objects_of(snapshot).items()):
        size = stored.get(sha)
        expected = entries[0].stored_size
        key = object_key(sha)
        if size is None:
            reason = f"object {key} is missing from the repository"
        elif expected is not None and size != expected:
            reason = f"object {key} has {size} bytes, expected {expected}"
        else:
            present.append(sha)
            continue
        failed.extend(FailedFile(e.path, f"file {e.path}: {reason}") for e in entries)
    return failed, present


def verify_snapshot(
    storage: Storage,
    stored: dict[str, int],
    snapshot: Snapshot,
    *,
    read_fraction: float = 0.0,
    reporter: Reporter | None = None,
    rng: random.Random | None = None,
    workers: int = 4,
    read_cache: dict[str, str | None] | None = None,
) -> SnapshotVerification:
    """``stored``: sha256 -> stored size of every object in the repository.
    ``read_cache`` (sha256 -> problem or None) spares re-reading an object shared by
    several snapshots."""
    cache = read_cache if read_cache is not None else {}
    result = SnapshotVerification(snapshot.id, snapshot.source_name)
    by_sha = _objects_of(snapshot)
    result.objects = len(by_sha)
    result.failed, present = check_presence(stored, snapshot)
    if read_fraction > 0 and present:
        chosen = pick_subset(present, read_fraction, rng or random.SystemRandom())
        lock = threading.Lock()
        total = sum(by_sha[sha][0].size for sha in chosen)
        with (
            (reporter or NullReporter()).task(f"verify {snapshot.id}", total=total) as advance,
            ThreadPoolExecutor(workers, thread_name_prefix="verify") as pool,
        ):

            def read_one(sha: str) -> None:
                entries = by_sha[sha]
                if sha in cache:
                    detail = cache[sha]
                else:
                    detail = None
                    try:
                        copy_object(storage, entries[0], lambda _chunk: None, advance)
                    except IntegrityError as exc:
                        detail = exc.message.split(": ", 1)[-1]
                    with lock:
                        cache[sha] = detail
                        result.objects_read += 1
                        result.bytes_read += entries[0].size
                if detail is not None:
                    with lock:
                        result.failed.extend(
                            FailedFile(e.path, f"file {e.path}: {detail}") for e in entries
                        )

            list(pool.map(read_one, chosen))
    result.failed.sort(key=lambda f: f.path)
    return result


def verify_snapshots(
    storage: Storage,
    snapshots: Sequence[Snapshot],
    *,
    read_fraction: float = 0.0,
    reporter: Reporter | None = None,
    workers: int = 4,
) -> list[SnapshotVerification]:
    """Verify each snapshot against ONE listing of the repository's objects."""
    if not snapshots:
        return []
    stored = stored_objects(storage)
    read_cache: dict[str, str | None] = {}
    return [
        verify_snapshot(
            storage,
            stored,
            snapshot,
            read_fraction=read_fraction,
            reporter=reporter,
            workers=workers,
            read_cache=read_cache,
        )
        for snapshot in snapshots
    ]
