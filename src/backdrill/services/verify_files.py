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
from backdrill.files.objects import ObjectReader, entry_key, listed_objects
from backdrill.files.restore import FailedFile
from backdrill.files.snapshot import FileEntry, Snapshot
from backdrill.progress import NullReporter, Reporter


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


def pick_subset(keys: Sequence[str], fraction: float, rng: random.Random) -> list[str]:
    """ceil(fraction x n) distinct objects (at least one), drawn with ``rng``."""
    if fraction >= 1:
        return list(keys)
    count = min(len(keys), max(1, math.ceil(fraction * len(keys))))
    return rng.sample(list(keys), count)


def _objects_of(snapshot: Snapshot) -> dict[str, list[FileEntry]]:
    """object key -> the files whose content it holds."""
    by_key: dict[str, list[FileEntry]] = {}
    for entry in snapshot.files():
        if entry.sha256 is not None:
            by_key.setdefault(entry_key(entry), []).append(entry)
    return by_key


def check_presence(
    listed: dict[str, int], snapshot: Snapshot
) -> tuple[list[FailedFile], list[str]]:
    """Pure: the files whose object is missing or has the wrong size, and the keys of
    the objects that are present."""
    failed: list[FailedFile] = []
    present: list[str] = []
    for key, entries in sorted(_objects_of(snapshot).items()):
        size = listed.get(key)
        expected = entries[0].stored_size
        if size is None:
            reason = f"object {key} is missing from the repository"
        elif expected is not None and size != expected:
            reason = f"object {key} has {size} bytes, expected {expected}"
        else:
            present.append(key)
            continue
        failed.extend(FailedFile(e.path, f"file {e.path}: {reason}") for e in entries)
    return failed, present


def verify_snapshot(
    reader: ObjectReader,
    listed: dict[str, int],
    snapshot: Snapshot,
    *,
    read_fraction: float = 0.0,
    reporter: Reporter | None = None,
    rng: random.Random | None = None,
    workers: int = 4,
    read_cache: dict[str, str | None] | None = None,
) -> SnapshotVerification:
    """``listed``: key -> stored size of every object in the repository.
    ``read_cache`` (key -> problem or None) spares re-reading an object shared by
    several snapshots. Reading encrypted objects needs the identity (ConfigError)."""
    cache = read_cache if read_cache is not None else {}
    result = SnapshotVerification(snapshot.id, snapshot.source_name)
    by_key = _objects_of(snapshot)
    result.objects = len(by_key)
    result.failed, present = check_presence(listed, snapshot)
    if read_fraction > 0 and present:
        chosen = pick_subset(present, read_fraction, rng or random.SystemRandom())
        lock = threading.Lock()
        total = sum(by_key[key][0].size for key in chosen)
        with (
            (reporter or NullReporter()).task(f"verify {snapshot.id}", total=total) as advance,
            ThreadPoolExecutor(workers, thread_name_prefix="verify") as pool,
        ):

            def read_one(key: str) -> None:
                entries = by_key[key]
                if key in cache:
                    detail = cache[key]
                else:
                    detail = None
                    try:
                        reader.copy(entries[0], lambda _chunk: None, advance)
                    except IntegrityError as exc:
                        detail = exc.message.split(": ", 1)[-1]
                    with lock:
                        cache[key] = detail
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
    reader: ObjectReader,
    snapshots: Sequence[Snapshot],
    *,
    read_fraction: float = 0.0,
    reporter: Reporter | None = None,
    workers: int = 4,
) -> list[SnapshotVerification]:
    """Verify each snapshot against ONE listing of the repository's objects."""
    if not snapshots:
        return []
    listed = listed_objects(reader.storage)
    read_cache: dict[str, str | None] = {}
    return [
        verify_snapshot(
            reader,
            listed,
            snapshot,
            read_fraction=read_fraction,
            reporter=reporter,
            workers=workers,
            read_cache=read_cache,
        )
        for snapshot in snapshots
    ]
