"""pg_dump's directory format, streamed: each data file is stored once pg_dump has
finished writing it, then deleted, so the local disk holds only the files being written.

"Finished" is known, not guessed: an inotify watch on the output directory (set before
pg_dump starts) sees every creation, write and close of its entries. A data file is
ready when a writer closed it (``IN_CLOSE_WRITE``) and nothing wrote to it since. It is
committed only if no write came while it was read and its size is what was read; after
it is committed and deleted, any write or re-creation of its name fails the dump (the
stored copy would be incomplete). ``toc.dat`` and the large-object TOCs (``*.toc``) are
stored after pg_dump exits, ``toc.dat`` last.

Without inotify (not Linux, instance limit reached) or after its queue overflowed, the
files are all stored after pg_dump exits, with a warning: correct, no longer streaming.
"""

from __future__ import annotations

import logging
import os
import select
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Generic, Self, TypeVar

from backdrill.pg import inotify
from backdrill.pg.command import Child
from backdrill.runtime.errors import ConfigError, PostgresError

log = logging.getLogger(__name__)

T = TypeVar("T")
#: ``store(name, file, before_commit) -> T``: store the file's bytes as ``name``; call
#: ``before_commit()`` after the last byte is read and before the object is committed
#: (it raises when the file must not be committed).
Store = Callable[[str, BinaryIO, Callable[[], None]], T]

TOC = "toc.dat"
_WRITES = inotify.CREATE | inotify.MODIFY | inotify.MOVED_TO
_MASK = _WRITES | inotify.CLOSE_WRITE | inotify.DELETE | inotify.MOVED_FROM
_POLL_SECONDS = 0.1


def stored_while_running(name: str) -> bool:
    """Pure: data files (``<id>.dat``, ``blob_<oid>.dat``) are stored as they complete;
    ``toc.dat`` and the large-object TOCs only after pg_dump exits."""
    return name.endswith(".dat") and name != TOC


@dataclass
class _Entry:
    writes: int = 0  # creations and writes seen so far
    closed_at: int = -1  # ``writes`` at the last close by a writer
    stored: bool = False  # committed and deleted: any later write spoils it


class _Rewritten(Exception):
    """Written while being stored: abort this upload, store it again once closed."""


class DirectoryWatcher:
    """What happened to each entry of one directory, from inotify. A thread drains the
    kernel's queue so it never fills while a large file is being stored; every question
    drains it first (under the lock), so the answer covers everything done until then."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Condition()
        self._entries: dict[str, _Entry] = {}
        self._ready: set[str] = set()
        self.spoiled: list[str] = []  # stored names written or created again since
        self.degraded: str | None = None  # why files are stored only after pg_dump exits
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            self._watch: inotify.Watch | None = inotify.open_watch(directory, _MASK)
        except inotify.Unavailable as exc:
            self._watch = None
            self._degrade(f"inotify is unavailable: {exc}")

    def __enter__(self) -> Self:
        if self._watch is not None:
            self._thread = threading.Thread(target=self._run, name="dump-watch", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._watch is not None:
            self._watch.close()

    def _degrade(self, why: str) -> None:
        if self.degraded is None:
            self.degraded = why
            self._ready.clear()
            log.warning(
                "pg_dump's files are stored after it exits (%s): the whole dump is held "
                "on local disk meanwhile",
                why,
            )

    def _run(self) -> None:
        assert self._watch is not None
        poller = select.poll()
        poller.register(self._watch.fd, select.POLLIN)
        while not self._stop.is_set():
            try:
                if poller.poll(_POLL_SECONDS * 1000):
                    with self._lock:
                        self._drain()
                        self._lock.notify_all()
            except (OSError, ValueError) as exc:
                with self._lock:
                    self._degrade(f"reading inotify events failed: {exc}")
                return

    def _drain(self) -> None:
        """Apply every queued event (the lock held)."""
        if self._watch is None:
            return
        while events := self._watch.read():
            for event in events:
                self._apply(event)

    def _apply(self, event: inotify.Event) -> None:
        if event.mask & inotify.Q_OVERFLOW:
            self._degrade("the inotify event queue overflowed")
            return
        if event.mask & inotify.IGNORED:
            self._degrade("the watch on the dump directory was removed")
            return
        if not event.name:
            return
        entry = self._entries.setdefault(event.name, _Entry())
        if event.mask & _WRITES:
            entry.writes += 1
            self._ready.discard(event.name)
            if entry.stored and event.name not in self.spoiled:
                self.spoiled.append(event.name)
        if event.mask & inotify.CLOSE_WRITE:
            entry.closed_at = entry.writes
            if not entry.stored and self.degraded is None and stored_while_running(event.name):
                self._ready.add(event.name)

    def take_ready(self, timeout: float) -> tuple[str, int] | None:
        """A data file closed by its writer and not written since, with its count of
        writes (what a later write is told apart by), or None after ``timeout`` seconds."""
        with self._lock:
            if not self._ready:
                self._lock.wait(timeout)
            if not self._ready:
                return None
            name = min(self._ready)
            self._ready.discard(name)
            return name, self._entries[name].writes

    def writes(self, name: str) -> int:
        with self._lock:
            self._drain()
            return self._entries.setdefault(name, _Entry()).writes

    def mark_stored(self, name: str, writes: int) -> bool:
        """Record ``name`` as stored if nothing wrote to it since ``writes`` (else False:
        it still holds the newer content, store it again)."""
        with self._lock:
            self._drain()
            entry = self._entries.setdefault(name, _Entry())
            if entry.writes != writes:
                return False
            entry.stored = True
            self._ready.discard(name)  # a close without a write meanwhile (pg_dump's fsync)
            return True

    def check_unspoiled(self) -> None:
        with self._lock:
            self._drain()
            spoiled = list(self.spoiled)
        if spoiled:
            names = ", ".join(repr(n) for n in spoiled[:5])
            raise PostgresError(
                f"pg_dump wrote {names} again after it was stored: the stored copy would "
                "be incomplete, so this backup is not committed"
            )


class _Shipper(Generic[T]):
    """Stores the files of one dump directory, remembering what was stored."""

    def __init__(self, directory: Path, watcher: DirectoryWatcher, store: Store[T]) -> None:
        self.directory = directory
        self.watcher = watcher
        self.store = store
        self.objects: dict[str, T] = {}
        self.stored: set[str] = set()  # committed and deleted

    def ship(self, name: str, writes: int, *, exited: bool) -> None:
        """Store ``name`` (as it was after ``writes`` writes) and delete it. While
        pg_dump runs, a file written meanwhile is left for its next close; after pg_dump
        exited, that is an error."""
        path = self.directory / name
        try:
            fh = path.open("rb")
        except OSError as exc:
            raise PostgresError(
                f"cannot read {name!r} of pg_dump's output: {exc.strerror}"
            ) from None
        with fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise PostgresError(f"unexpected entry {name!r} in pg_dump's output directory")

            def before_commit() -> None:
                read = fh.tell()
                size = os.fstat(fh.fileno()).st_size
                if self.watcher.writes(name) != writes or size != read:
                    raise _Rewritten(f"{name}: {read} bytes read, {size} on disk")

            try:
                obj = self.store(name, fh, before_commit)
            except _Rewritten as exc:
                if exited:
                    raise PostgresError(
                        f"{name!r} of pg_dump's output changed while it was stored ({exc})"
                    ) from None
                log.debug("written while being stored, stored again once closed: %s", exc)
                return
        self.objects[name] = obj
        if not self.watcher.mark_stored(name, writes):
            if exited:
                raise PostgresError(f"{name!r} of pg_dump's output changed after it was stored")
            return  # still on disk with its newer content: stored again once closed
        path.unlink()
        self.stored.add(name)

    def ship_rest(self) -> None:
        """After pg_dump exited: every file left, ``toc.dat`` last; a stored name that
        is back fails the dump."""
        self.watcher.check_unspoiled()
        left = sorted(p.name for p in self.directory.iterdir())
        back = [n for n in left if n in self.stored]
        if back:
            self.watcher.spoiled.extend(back)
            self.watcher.check_unspoiled()
        for name in left:
            if name != TOC:
                self.ship(name, self.watcher.writes(name), exited=True)
        self.ship(TOC, self.watcher.writes(TOC), exited=True)
        self.watcher.check_unspoiled()


def dump_directory(
    argv: Sequence[str | Path],
    env: dict[str, str],
    jobs: int,
    work_dir: Path | None,
    store: Store[T],
) -> list[T]:
    """Run pg_dump (``argv``) in the directory format with ``jobs`` workers into a
    staging directory under ``work_dir``; return what ``store`` returned for each file,
    ``toc.dat``'s last."""
    try:
        staging = tempfile.TemporaryDirectory(
            prefix="backdrill-dump-", dir=str(work_dir) if work_dir else None
        )
    except OSError as exc:
        raise ConfigError(
            f"backup -> work_dir {work_dir or tempfile.gettempdir()}: {exc.strerror}"
        ) from None
    with staging as tmp:
        out = Path(tmp) / "dump"
        out.mkdir()  # pg_dump accepts an empty directory: watched before it starts
        full = [*argv, "--format=directory", f"--jobs={jobs}", f"--file={out}"]
        with (
            DirectoryWatcher(out) as watcher,
            Child(full, env=env, stdout=subprocess.DEVNULL, what="pg_dump") as dump,
        ):
            shipper = _Shipper(out, watcher, store)
            while dump.proc.poll() is None:
                ready = watcher.take_ready(_POLL_SECONDS)
                if ready is not None:
                    shipper.ship(*ready, exited=False)
                watcher.check_unspoiled()
            dump.check()
            shipper.ship_rest()
        return list(shipper.objects.values())
