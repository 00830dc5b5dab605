"""Restore into a local directory, never outside it.

Every parent directory is created and opened one level at a time, relative to the one
above (``dir_fd``) and with ``O_NOFOLLOW``: a symlink (whether in the target already or
restored by this run) is never followed, so no snapshot can make a restore create or
write anything outside the target. A file is written under a temporary name next to its
destination, verified, given its owner (as root), its permission bits (without setuid,
setgid and sticky unless ``keep_special_bits``) and mtime, then renamed into place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

from backdrill.files.objects import ObjectReader
from backdrill.files.ownership import Owner, restore_ids, restored_mode, restores_owners
from backdrill.files.restore import RestoreSummary, RestoreTarget, restore_to
from backdrill.files.snapshot import FileEntry, Snapshot
from backdrill.files.source import safe_relative_path
from backdrill.runtime.errors import IntegrityError, StorageError, UsageError
from backdrill.runtime.progress import Advance, Reporter

TMP_PREFIX = ".backdrill-restore-"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def entry_owner(entry: FileEntry) -> Owner:
    return Owner(entry.uid, entry.gid, entry.owner, entry.group)


class DirTarget(RestoreTarget):
    """``owners``: give entries their recorded owner (default: when running as root)."""

    local = True

    def __init__(
        self, root: Path, *, keep_special_bits: bool = False, owners: bool | None = None
    ) -> None:
        self.root = root
        self.display = str(root)
        self.keep_special_bits = keep_special_bits
        self.owners = restores_owners() if owners is None else owners

    def is_empty(self) -> bool:
        if not self.root.exists():
            return True
        if not self.root.is_dir():
            raise UsageError(f"restore target {self.root} exists and is not a directory")
        return next(self.root.iterdir(), None) is None

    def prepare(self, first_owned: FileEntry | None) -> None:
        """Create the target; as root, a target created now gets the owner of the
        snapshot's first entry that records one (an Odoo filestore: the Odoo user)."""
        if self.root.is_dir():
            return
        try:
            self.root.mkdir(parents=True)
        except OSError as exc:
            raise StorageError(f"cannot create {self.root}: {exc.strerror}") from None
        ids = restore_ids(entry_owner(first_owned)) if first_owned and self.owners else None
        if ids is not None:
            os.chown(self.root, *ids, follow_symlinks=False)

    def _open_parent(self, entry: FileEntry) -> tuple[int, str]:
        """A descriptor of the directory that holds ``entry`` (created as needed, each
        level checked not to be a symlink) and the entry's name in it."""
        if not safe_relative_path(entry.path):
            raise IntegrityError(f"file {entry.path!r}: unsafe path in the snapshot")
        *parents, name = entry.path.split("/")
        ids = restore_ids(entry_owner(entry)) if self.owners else None
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise StorageError(f"cannot open {self.root}: {exc.strerror}") from None
        try:
            for depth, part in enumerate(parents, start=1):
                created = False
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, dir_fd=fd)
                    created = True
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        where = "/".join(parents[:depth])
                        raise IntegrityError(
                            f"file {entry.path}: {where} is a symlink or a file in the target, "
                            "not a directory; nothing is written through it"
                        ) from None
                    raise
                os.close(fd)
                fd = child
                if created and ids is not None:  # a directory takes its first file's owner
                    os.fchown(fd, *ids)
            return fd, name
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"cannot create the directories of {entry.path}: {exc}") from None
        except BaseException:
            os.close(fd)
            raise

    def write_file(self, reader: ObjectReader, entry: FileEntry, advance: Advance) -> None:
        parent, name = self._open_parent(entry)
        tmp = f"{TMP_PREFIX}{name}.{secrets.token_hex(4)}"
        try:
            fd = os.open(tmp, _NEW_FILE_FLAGS, 0o600, dir_fd=parent)
            with os.fdopen(fd, "wb") as out:
                reader.copy(entry, out.write, advance)
                out.flush()
                ids = restore_ids(entry_owner(entry)) if self.owners else None
                if ids is not None:  # before chmod: chown clears setuid and setgid
                    os.fchown(fd, *ids)
                os.fchmod(fd, restored_mode(entry.mode, keep_special_bits=self.keep_special_bits))
                os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
            os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except OSError as exc:
            _discard(tmp, parent)
            raise StorageError(f"cannot write {self.root / entry.path}: {exc.strerror}") from None
        except BaseException:
            _discard(tmp, parent)
            raise
        finally:
            os.close(parent)

    def write_symlink(self, entry: FileEntry) -> bool:
        assert entry.target is not None
        parent, name = self._open_parent(entry)
        tmp = f"{TMP_PREFIX}{name}.{secrets.token_hex(4)}"
        try:
            os.symlink(entry.target, tmp, dir_fd=parent)
            ids = restore_ids(entry_owner(entry)) if self.owners else None
            if ids is not None:
                os.chown(tmp, *ids, dir_fd=parent, follow_symlinks=False)
            ns = (entry.mtime_ns, entry.mtime_ns)
            os.utime(tmp, ns=ns, dir_fd=parent, follow_symlinks=False)
            os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except OSError as exc:
            _discard(tmp, parent)
            raise StorageError(f"cannot write {self.root / entry.path}: {exc.strerror}") from None
        finally:
            os.close(parent)
        return True


def _discard(name: str, parent: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=parent)


def restore_snapshot(
    reader: ObjectReader,
    snapshot: Snapshot,
    target_dir: Path,
    reporter: Reporter,
    *,
    force: bool = False,
    strict: bool = True,
) -> RestoreSummary:
    """Restore ``snapshot`` into the directory ``target_dir`` (the drill's entry point)."""
    return restore_to(reader, snapshot, DirTarget(target_dir), reporter, force=force, strict=strict)
