"""``verify`` of filestore snapshots: every referenced object exists with the size the
snapshot records, every packed content's pack is listed and holds its range (one
listing pass); with ``--read-data`` (or a random subset of the
objects, as restic's ``--read-data-subset``) each is downloaded, decompressed and
re-hashed. Each problem names the file(s) it damages."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from backdrill.files.addrset import KeySet
from backdrill.files.chunks import iter_files
from backdrill.files.objects import ObjectReader, blob_ref
from backdrill.files.plan import Sizes
from backdrill.files.pool import ordered_map
from backdrill.files.restore import FailedFile
from backdrill.files.snapshot import FileEntry, Snapshot
from backdrill.repository.layout import FILES_OBJECTS_ROOT, FILES_PACKS_ROOT
from backdrill.runtime.errors import IntegrityError
from backdrill.runtime.progress import NullReporter, Reporter
from backdrill.storage import Storage

T = TypeVar("T")
#: objects whose outcome is remembered across the snapshots of one verify
MAX_CACHED = 100_000


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


def pick_subset(keys: Sequence[T], fraction: float, rng: random.Random) -> list[T]:
    """ceil(fraction x n) distinct objects (at least one), drawn with ``rng``."""
    if fraction >= 1:
        return list(keys)
    count = min(len(keys), max(1, math.ceil(fraction * len(keys))))
    return rng.sample(list(keys), count)


def _objects_of(storage: Storage, snapshot: Snapshot) -> KeySet:
    """stored content (:func:`blob_ref`) -> (stored size, the JSON of its first file
    entry), on disk: every distinct object or packed blob of the snapshot, whatever the
    count."""
    objects = KeySet()
    try:
        objects.add_noted(
            (blob_ref(e), e.stored_size if e.stored_size is not None else -1, e.model_dump_json())
            for e in iter_files(storage, snapshot)
        )
    except BaseException:
        objects.close()
        raise
    return objects


def _files_of(storage: Storage, snapshot: Snapshot, problems: dict[str, str]) -> list[FailedFile]:
    """Every file of ``snapshot`` whose object has a problem (object key -> reason)."""
    return [
        FailedFile(e.path, f"file {e.path}: {problems[key]}")
        for e in iter_files(storage, snapshot)
        if (key := blob_ref(e)) in problems
    ]


def presence_problem(listed_size: int | None, key: str, expected: int | None) -> str | None:
    """Pure: why the object ``key`` does not stand for its files, or None."""
    if listed_size is None:
        return f"object {key} is missing from the repository"
    if expected is not None and listed_size != expected:
        return f"object {key} has {listed_size} bytes, expected {expected}"
    return None


def blob_problem(listed_size: int | None, key: str, offset: int, stored_size: int) -> str | None:
    """Pure: why the pack ``key`` does not hold a blob at ``offset``, or None."""
    if listed_size is None:
        return f"pack {key} is missing from the repository"
    if listed_size < offset + stored_size:
        return (
            f"pack {key} has {listed_size} bytes, the blob at offset {offset} "
            f"ends at {offset + stored_size}"
        )
    return None


def _presence(listed: Sizes, ref: str, stored_size: int) -> str | None:
    """Why the stored content ``ref`` is not there."""
    key, at, offset = ref.partition("@")
    if at:  # a packed blob: ``<pack key>@<offset>`` (:func:`blob_ref`)
        return blob_problem(listed.get(key), key, int(offset), max(stored_size, 0))
    expected = None if stored_size < 0 else stored_size
    return presence_problem(listed.get(ref), ref, expected)


def verify_snapshot(
    reader: ObjectReader,
    listed: Sizes,
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
    several snapshots. Reading encrypted objects needs the identity (ConfigError).
    Memory stays bounded: the snapshot's objects are gathered on disk (:class:`KeySet`)
    and only the damaged ones are held."""
    cache = read_cache if read_cache is not None else {}
    result = SnapshotVerification(snapshot.id, snapshot.source_name)
    problems: dict[str, str] = {}
    with _objects_of(reader.storage, snapshot) as objects:
        result.objects = objects.count
        present = 0
        for key, stored_size, _note in objects.items():
            problem = _presence(listed, key, stored_size)
            if problem is None:
                present += 1
            else:
                problems[key] = problem
        if read_fraction > 0 and present:
            chosen = _chosen(present, read_fraction, rng or random.SystemRandom())
            lock = threading.Lock()
            with (reporter or NullReporter()).task(f"verify {snapshot.id}") as advance:

                def to_read() -> Iterator[FileEntry]:
                    index = -1
                    for key, _size, note in objects.items():
                        if key in problems:
                            continue
                        index += 1
                        if chosen is None or index in chosen:
                            yield FileEntry.model_validate_json(note)

                def read_one(entry: FileEntry) -> None:
                    key = blob_ref(entry)
                    if key in cache:
                        detail = cache[key]
                    else:
                        detail = None
                        try:
                            reader.copy(entry, lambda _chunk: None, advance)
                        except IntegrityError as exc:
                            detail = exc.message.split(": ", 1)[-1]
                        with lock:
                            if len(cache) < MAX_CACHED:
                                cache[key] = detail
                            result.objects_read += 1
                            result.bytes_read += entry.size
                    if detail is not None:
                        with lock:
                            problems[key] = detail

                for _ in ordered_map(
                    read_one, to_read(), workers=workers, window=workers * 4, name="verify"
                ):
                    pass
    if problems:
        result.failed = _files_of(reader.storage, snapshot, problems)
    result.failed.sort(key=lambda f: f.path)
    return result


def _chosen(count: int, fraction: float, rng: random.Random) -> set[int] | None:
    """The indexes of the objects to read: ceil(fraction x count), at least one; None:
    every one."""
    if fraction >= 1:
        return None
    return set(pick_subset(range(count), fraction, rng))


def verify_snapshots(
    reader: ObjectReader,
    snapshots: Sequence[Snapshot],
    *,
    read_fraction: float = 0.0,
    reporter: Reporter | None = None,
    workers: int = 4,
) -> list[SnapshotVerification]:
    """Verify each snapshot against ONE listing of the repository's objects (kept on
    disk: :class:`KeySet`)."""
    if not snapshots:
        return []
    read_cache: dict[str, str | None] = {}
    with KeySet() as listed:
        for root in (FILES_OBJECTS_ROOT, FILES_PACKS_ROOT):
            listed.add_many((info.key, info.size) for info in reader.storage.list_objects(root))
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
