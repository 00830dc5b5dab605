"""``file:///path``: a repository in a local directory.

A file appears under its final name only when complete: it is written to a hidden
``.partial-*`` file in the same directory, fsynced, then renamed.

The repository holds whole databases: every directory it creates is 0700 and every
file 0600, whatever the umask (an existing directory keeps its mode).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from backdrill.runtime.errors import NotFound, StorageError
from backdrill.storage.base import (
    AlreadyExists,
    Capabilities,
    ObjectInfo,
    ObjectWriter,
    PendingUpload,
    ProbeResult,
    Retention,
    Storage,
)

PARTIAL_PREFIX = ".partial-"
DIR_MODE = 0o700
FILE_MODE = 0o600


def make_dirs(path: Path) -> None:
    """``mkdir -p`` with every directory it creates 0700 (``os.makedirs`` gives the
    intermediate ones the umask's mode)."""
    missing: list[Path] = []
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue
        os.chmod(directory, DIR_MODE)  # mkdir's mode is masked by the umask


def create_private(path: Path) -> BinaryIO:
    """A new file (never an existing one, never through a symlink), 0600."""
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE
    )
    return os.fdopen(fd, "wb")


#: delete() drops the directories it leaves empty: another thread's writer may see the
#: directory it just made vanish before its file is in it, and makes it again
_VANISHED_DIR_RETRIES = 5


def create_new(path: Path) -> BinaryIO:
    """``create_private`` in a directory made first (``make_dirs``), made again if a
    concurrent delete() removed it (emptied) in between."""
    for attempt in range(_VANISHED_DIR_RETRIES):
        try:
            make_dirs(path.parent)
            return create_private(path)
        except (FileNotFoundError, FileExistsError):  # make_dirs: made, then removed
            if attempt == _VANISHED_DIR_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _LocalWriter(ObjectWriter):
    def __init__(self, final: Path) -> None:
        super().__init__()
        self._final = final
        self._tmp = final.with_name(f"{PARTIAL_PREFIX}{final.name}.{secrets.token_hex(4)}")
        self._file = create_new(self._tmp)

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as exc:
            raise StorageError(f"cannot write {self._final}: {exc.strerror}") from None
        self.bytes_written += len(data)

    def _commit(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self._final)
            _fsync_dir(self._final.parent)
        except OSError as exc:
            self._abort()
            raise StorageError(f"cannot write {self._final}: {exc.strerror}") from None

    def _abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()


def _walk_sorted(directory: str, rel: str) -> Iterator[tuple[str, str]]:
    """(key, path) of every file under ``directory``, in key order (a directory sorts
    as its name and a slash), never entering a symlink nor ``.partial-*`` files."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return
    dirs = {e.name for e in entries if e.is_dir(follow_symlinks=False)}
    links = {e.name for e in entries if e.is_symlink() and e.is_dir()}
    for entry in sorted(entries, key=lambda e: e.name + "/" if e.name in dirs else e.name):
        if entry.name in dirs:
            yield from _walk_sorted(entry.path, f"{rel}{entry.name}/")
        elif entry.name not in links and not entry.name.startswith(PARTIAL_PREFIX):
            yield f"{rel}{entry.name}", entry.path


class LocalStorage(Storage):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.local_root = root
        self.url = f"file://{root}"
        #: the root resolved, once it exists (a first backup creates it)
        self._resolved_root: Path | None = None

    def _root(self) -> Path:
        root = self._resolved_root
        if root is None:
            root = self.root.resolve()
            if root.is_dir():
                self._resolved_root = root
        return root

    def _path(self, key: str) -> Path:
        """The file of ``key``, every symlink on its way resolved: one that leads out of
        the repository is refused."""
        path = (self.root / key).resolve()
        if not path.is_relative_to(self._root()):
            raise StorageError(f"key {key!r} escapes the repository {self.root}")
        return path

    def open_writer(self, key: str) -> ObjectWriter:
        try:
            return _LocalWriter(self._path(key))
        except OSError as exc:
            raise StorageError(f"cannot write {self.url}/{key}: {exc.strerror}") from None

    def capabilities(self) -> Capabilities:
        return Capabilities(
            object_lock=False,
            detail="a local directory has no object lock: whoever can write to it can "
            "rewrite its files",
        )

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        if_absent: bool = False,
        retention: Retention | None = None,
    ) -> None:
        if retention is not None:
            raise StorageError(f"cannot lock {self.url}/{key}: a directory has no object lock")
        if not if_absent:
            with self.open_writer(key) as writer:
                writer.write(data)
            return
        # Exclusive creation that is never seen half-written: write a temp file, then
        # hard-link it to the final name (link fails if the name exists), then unlink.
        final = self._path(key)
        tmp = final.with_name(f"{PARTIAL_PREFIX}{final.name}.{secrets.token_hex(4)}")
        try:
            with create_new(tmp) as out:
                out.write(data)
            try:
                os.link(tmp, final)
            except FileExistsError:
                raise AlreadyExists(key) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def open_reader(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise NotFound(f"object {key} does not exist in {self.url}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {self.url}/{key}: {exc.strerror}") from None

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """``pread``: the ``length`` bytes at ``offset``, fewer at the end of the file."""
        try:
            fd = os.open(self._path(key), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"object {key} does not exist in {self.url}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {self.url}/{key}: {exc.strerror}") from None
        parts: list[bytes] = []
        try:
            while length > 0 and (part := os.pread(fd, length, offset)):
                parts.append(part)
                offset += len(part)
                length -= len(part)
        except OSError as exc:
            raise StorageError(f"cannot read {self.url}/{key}: {exc.strerror}") from None
        finally:
            os.close(fd)
        return b"".join(parts)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            return None
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            raise StorageError(f"repository directory {self.root} does not exist")
        # walk only the directory the prefix names (``files/objects/`` -> files/objects)
        start = self.root
        if "/" in prefix:
            directory = prefix.rsplit("/", 1)[0]
            self._path(directory)  # refuses a prefix that escapes the repository
            start = self.root / directory  # not resolved: keys are relative to self.root
        rel = os.path.relpath(start, self.root)
        # streamed in key order, one directory in memory at a time (millions of objects)
        for key, path in _walk_sorted(str(start), "" if rel == "." else f"{rel}/"):
            if key.startswith(prefix):
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                yield ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def list_dirs(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix.strip("/") else self.root
        try:
            return sorted(e.name for e in os.scandir(base) if e.is_dir(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise StorageError(f"cannot list {self.url}/{prefix}: {exc.strerror}") from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        # drop directories left empty, up to the root
        parent = path.parent
        root = self.root.resolve()
        while parent != root and parent.is_relative_to(root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def pending_uploads(self, prefix: str = "") -> list[PendingUpload]:
        pending: list[PendingUpload] = []
        if not self.root.is_dir():
            return pending
        for dirpath, _dirnames, filenames in os.walk(self.root):
            rel_dir = os.path.relpath(dirpath, self.root)
            for name in filenames:
                if not name.startswith(PARTIAL_PREFIX):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix):
                    st = os.stat(os.path.join(dirpath, name))
                    pending.append(
                        PendingUpload(key, key, datetime.fromtimestamp(st.st_mtime, UTC))
                    )
        return sorted(pending, key=lambda p: p.key)

    def abort_pending(self, upload: PendingUpload) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(upload.upload_id).unlink()

    def probe(self) -> list[ProbeResult]:
        if not self.root.is_dir():
            ancestor = self.root
            while not ancestor.exists() and ancestor != ancestor.parent:
                ancestor = ancestor.parent
            ok = ancestor.is_dir() and os.access(ancestor, os.W_OK)
            detail = (
                f"{self.root} does not exist yet; the first backup creates it"
                if ok
                else f"{self.root} does not exist and {ancestor} is not writable"
            )
            return [ProbeResult("repository directory", ok, detail)]
        results = [ProbeResult("repository directory", True, str(self.root))]
        if self.root.is_dir():
            probe_key = f".probe-{secrets.token_hex(4)}"
            try:
                self.put_bytes(probe_key, b"ok")
                self.delete(probe_key)
                results.append(ProbeResult("repository writable", True, str(self.root)))
            except (OSError, StorageError) as exc:
                results.append(ProbeResult("repository writable", False, str(exc)))
        return results
