"""Where a filestore lives: a local directory, or a bucket/prefix on an S3 endpoint.

A source lists its items (:class:`SourceItem`) and reads one item's content in chunks,
telling whether the item stayed the same while it was read (:class:`ReadOutcome`).
A directory is walked without following any symlink; an S3 source is read through
:class:`~backdrill.storage.s3.S3Storage` with the ``files -> s3`` endpoint/credentials.
"""

from __future__ import annotations

import errno
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple
from urllib.parse import unquote, urlparse

from backdrill.config.model import S3Options
from backdrill.files.ownership import Owner, owner_of
from backdrill.files.snapshot import SkippedEntry
from backdrill.repository.layout import source_name
from backdrill.repository.streams import CHUNK
from backdrill.runtime.errors import ConfigError, NotFound, UsageError
from backdrill.storage import Storage, open_storage

S3_SOURCE_MODE = 0o644
#: never through a symlink, and never waiting for a writer (a FIFO put where a file was)
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
#: called with the relative path once the first chunk of an item was read: the seam
#: where tests change or delete a file in the middle of its read, deterministically
DuringRead = Callable[[str], None]


class SourceItem(NamedTuple):
    """One listed item (a tuple: millions are made by a scan, and a frozen dataclass
    costs three times as much to build)."""

    path: str
    kind: Literal["file", "symlink"]
    size: int
    mtime_ns: int
    mode: int
    etag: str | None = None
    target: str | None = None
    #: the owner at scan time (directory sources)
    owner: Owner | None = None


@dataclass(frozen=True)
class ReadOutcome:
    """``ok``: the item did not change while read; ``changed``: it did; ``vanished``:
    it was gone when opened or after the read; ``replaced``: a symlink or a special file
    stands where a file was listed. Size, mtime and mode as read."""

    status: Literal["ok", "changed", "vanished", "replaced"]
    size: int = 0
    mtime_ns: int = 0
    mode: int = 0
    etag: str | None = None


def safe_relative_path(path: str) -> bool:
    """A relative POSIX path with no empty, ``.`` or ``..`` component."""
    if not path or path.startswith("/") or "\x00" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


class FileSource(ABC):
    #: printable location, without secrets
    display: str
    name: str

    @abstractmethod
    def scan(self) -> Iterator[SourceItem | SkippedEntry]:
        """Every item, by relative path in sorted order, or why one is skipped."""

    @abstractmethod
    def read(
        self, item: SourceItem, on_chunk: Callable[[bytes], None], during: DuringRead | None
    ) -> ReadOutcome: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def reader_threads(self, configured: int) -> int:
        """How many threads read this source at once (``storage.max_concurrency``: the
        I/O a remote source waits for)."""
        return configured

    def prefetch(self, items: list[SourceItem]) -> None:  # noqa: B027 - optional hook
        """A hint: ``items`` are read next."""


def _path_order(entry: os.DirEntry[str]) -> str:
    """A directory sorts as its name and a slash: the walk then yields paths in plain
    string order, the order of a snapshot's entries (and of an S3 listing)."""
    try:
        is_dir = entry.is_dir(follow_symlinks=False)
    except OSError:
        is_dir = False
    return f"{entry.name}/" if is_dir else entry.name


def _encodable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class DirSource(FileSource):
    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.abspath(root))
        self.display = str(self.root)
        self.name = source_name(str(self.root)) or "root"

    def scan(self) -> Iterator[SourceItem | SkippedEntry]:
        if not self.root.is_dir():
            raise ConfigError(
                f"files source {self.root} is not a directory",
                hint="check files -> source (or --source) and that the filestore is mounted",
            )
        yield from self._scan_dir(self.root, "")

    def _scan_dir(self, directory: Path, rel: str) -> Iterator[SourceItem | SkippedEntry]:
        try:
            entries = sorted(os.scandir(directory), key=_path_order)
        except OSError as exc:
            yield SkippedEntry(path=rel or ".", reason=f"cannot list: {exc.strerror}")
            return
        for entry in entries:
            path = f"{rel}{entry.name}"
            if not _encodable(entry.name):
                yield SkippedEntry(
                    path=os.fsencode(path).decode("utf-8", "replace"),
                    reason="name is not valid UTF-8",
                )
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                yield SkippedEntry(path=path, reason="vanished during backup")
                continue
            except OSError as exc:
                yield SkippedEntry(path=path, reason=f"cannot stat: {exc.strerror}")
                continue
            if stat.S_ISDIR(st.st_mode):
                yield from self._scan_dir(Path(entry.path), f"{path}/")
            elif stat.S_ISLNK(st.st_mode):
                try:
                    target = os.readlink(entry.path)
                except OSError as exc:
                    yield SkippedEntry(path=path, reason=f"cannot read symlink: {exc.strerror}")
                    continue
                yield SourceItem(
                    path,
                    "symlink",
                    0,
                    st.st_mtime_ns,
                    stat.S_IMODE(st.st_mode),
                    target=target,
                    owner=owner_of(st),
                )
            elif stat.S_ISREG(st.st_mode):
                mode = stat.S_IMODE(st.st_mode)
                yield SourceItem(path, "file", st.st_size, st.st_mtime_ns, mode, owner=owner_of(st))
            else:
                yield SkippedEntry(path=path, reason=f"special file ({_kind(st.st_mode)})")

    def reader_threads(self, configured: int) -> int:
        """One: local files are read by one thread while the kernel reads ahead of it
        (:meth:`prefetch`). More threads only take turns at the interpreter lock around
        each system call (docs/benchmarks.md, "Reading a directory source")."""
        return 1

    def prefetch(self, items: list[SourceItem]) -> None:
        """Ask the kernel to read these files into its cache now, all at once
        (``POSIX_FADV_WILLNEED``): the one reading thread then rarely waits for the
        disk. Never blocks on a special file (``O_NONBLOCK``); errors are left to the
        read."""
        if not hasattr(os, "posix_fadvise"):  # not on macOS
            return
        for item in items:
            if item.kind != "file" or not item.size:
                continue
            try:
                fd = os.open(f"{self.display}/{item.path}", _READ_FLAGS)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass  # not a regular file, or a file system without the hint
            finally:
                os.close(fd)

    def read(
        self, item: SourceItem, on_chunk: Callable[[bytes], None], during: DuringRead | None
    ) -> ReadOutcome:
        path = f"{self.display}/{item.path}"
        try:
            fd = os.open(path, _READ_FLAGS)
        except FileNotFoundError:
            return ReadOutcome("vanished")
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # replaced by a symlink since the scan
                return ReadOutcome("replaced")
            raise
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                return ReadOutcome("replaced")
            count = 0
            first = True
            while True:
                want = read_size(item.size, count)
                chunk = os.read(fd, want)
                if not chunk:
                    break
                on_chunk(chunk)
                count += len(chunk)
                if first and during is not None:
                    during(item.path)
                first = False
                # at its size: the end, with no further read to see it; a short read
                # before it (some FUSE file systems give them) reads on
                if len(chunk) < want and count >= before.st_size:
                    break
            if first and during is not None:
                during(item.path)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        try:
            now = os.lstat(path)
        except FileNotFoundError:
            return ReadOutcome("vanished")
        same = (
            before.st_size == after.st_size == count == now.st_size
            and before.st_mtime_ns == after.st_mtime_ns == now.st_mtime_ns
            and before.st_ino == now.st_ino
        )
        return ReadOutcome(
            "ok" if same else "changed", count, after.st_mtime_ns, stat.S_IMODE(after.st_mode)
        )


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "unknown type"


class S3Source(FileSource):
    """Objects under ``s3://bucket/prefix``; ETag and size stand for size and mtime."""

    def __init__(self, url: str, options: S3Options | None) -> None:
        parsed = urlparse(url)
        self.display = url
        self.name = source_name(url) or parsed.netloc
        self.storage: Storage = open_storage(url, options or S3Options())

    def scan(self) -> Iterator[SourceItem | SkippedEntry]:
        for info in self.storage.list_objects(""):
            if info.key.endswith("/"):
                continue  # a "directory" marker, not content
            if not safe_relative_path(info.key):
                yield SkippedEntry(path=info.key, reason="unsafe path (empty, . or .. part)")
                continue
            mtime_ns = int(info.last_modified.timestamp()) * 1_000_000_000
            yield SourceItem(info.key, "file", info.size, mtime_ns, S3_SOURCE_MODE, etag=info.etag)

    def read(
        self, item: SourceItem, on_chunk: Callable[[bytes], None], during: DuringRead | None
    ) -> ReadOutcome:
        try:
            stream = self.storage.open_reader(item.path)
        except NotFound:
            return ReadOutcome("vanished")
        count = 0
        first = True
        with stream:
            while chunk := stream.read(read_size(item.size, count)):
                on_chunk(chunk)
                count += len(chunk)
                if first and during is not None:
                    during(item.path)
                first = False
        # one GET returns one whole version of the object: consistent by construction;
        # when it is not the version listed, its ETag is unknown and the next run re-reads
        etag = item.etag if count == item.size else None
        return ReadOutcome("ok", count, item.mtime_ns, item.mode, etag)

    def close(self) -> None:
        self.storage.close()


def read_size(expected: int, done: int) -> int:
    """Pure: the bytes to ask for next, what is left of the listed size and one more
    (the end seen at once), at most :data:`CHUNK`; :data:`CHUNK` past it (the item grew).
    Never a 1 MiB buffer for a small file: glibc's malloc would raise its mmap threshold
    on freeing the first one (:mod:`backdrill.runtime.allocator`), and a fixed threshold
    would map and unmap one per file."""
    left = expected - done
    return min(CHUNK, left + 1) if left >= 0 else CHUNK


def open_source(spec: str, options: S3Options | None) -> FileSource:
    """``s3://bucket/prefix``, ``file:///path`` or a directory path."""
    parsed = urlparse(spec)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise UsageError(f"files source {spec} needs a bucket: s3://bucket/prefix")
        return S3Source(spec, options)
    if parsed.scheme == "file":
        return DirSource(Path(unquote(parsed.path)))
    if parsed.scheme:
        raise UsageError(f"files source {spec} must be a directory or s3://bucket/prefix")
    return DirSource(Path(spec))
