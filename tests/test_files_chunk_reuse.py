"""An unchanged run does not re-encode the previous snapshot's chunks: a chunk whose
entries all come again (the very objects read from it, in order) is reused by address,
and the chunks written are always those a fresh encoding of the same entries gives."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

from backdrill.files.chunks import CUT_EVERY, ChunkWriter, RecentChunks, iter_entries
from backdrill.files.snapshot import SCHEMA_VERSION, FileEntry, Snapshot
from backdrill.runtime.timeutil import new_id, utcnow
from backdrill.storage.local import LocalStorage
from helpers.snapshots import empty_snapshot

#: the writer trails the reader by the backup's window and look-up batch
LAG = 512 + 256


def _entry(path: str, size: int = 1) -> FileEntry:
    return FileEntry(path=path, size=size, mtime_ns=1, mode=0o644, sha256="a" * 64)


def _snapshot(chunks: list[str]) -> Snapshot:
    now = utcnow()
    return empty_snapshot(SCHEMA_VERSION, new_id(now), now, "src", chunks=chunks, skipped_chunks=[])


def _lagging(entries: Iterable[FileEntry]) -> Iterator[FileEntry]:
    held: deque[FileEntry] = deque()
    for entry in entries:
        held.append(entry)
        if len(held) > LAG:
            yield held.popleft()
    yield from held


def _write(
    storage: LocalStorage, entries: Iterable[FileEntry], recent: RecentChunks | None
) -> tuple[list[str], ChunkWriter]:
    writer = ChunkWriter(storage, lambda _key: False, recent=recent)
    for entry in _lagging(entries):
        writer.add(entry)
    return writer.finish(), writer


def test_unchanged_chunks_are_reused_and_changed_ones_encoded_as_a_fresh_run_would(
    tmp_path: Path,
) -> None:
    (tmp_path / "repo").mkdir()
    storage = LocalStorage(tmp_path / "repo")
    paths = sorted(f"{i % 97:02d}/{i:07d}" for i in range(12 * CUT_EVERY))
    first, _ = _write(storage, (_entry(p) for p in paths), None)
    assert len(first) > 5
    previous = _snapshot(first)

    # unchanged: every chunk reused by address, none encoded
    recent = RecentChunks()
    again, writer = _write(storage, iter_entries(storage, previous, recent), recent)
    assert again == first
    assert writer.reused_chunks == len(first) and writer.new_chunks == 0

    # one entry changed, one dropped, one added: the same chunks as a fresh encoding
    def edited(entries: Iterable[FileEntry]) -> Iterator[FileEntry]:
        for entry in entries:
            if entry.path == paths[100]:
                yield entry.model_copy(update={"size": 2})
            elif entry.path == paths[-50]:
                continue
            else:
                yield entry
                if entry.path == paths[5000]:
                    yield _entry(paths[5000] + "-added")

    fresh, _ = _write(storage, edited(_entry(p) for p in paths), None)
    recent = RecentChunks()
    reused, writer = _write(storage, edited(iter_entries(storage, previous, recent)), recent)
    assert reused == fresh
    assert 0 < writer.reused_chunks <= len(first) - 3
    assert len(set(reused) - set(first)) >= 3

    # the reused snapshot reads back as the very entries written
    assert [e.path for e in iter_entries(storage, _snapshot(reused))] == [
        e.path for e in edited(_entry(p) for p in paths)
    ]
