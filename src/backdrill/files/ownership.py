"""Owners and permission bits of filestore entries: recorded at backup time (uid, gid
and their names), given back on restore (by name, else by number, and only when the
restore runs as root), and the mode a restore writes (no setuid, setgid or sticky bit
unless asked for)."""

from __future__ import annotations

import functools
import grp
import os
import pwd
import stat
from dataclasses import dataclass

from backdrill.files.snapshot import FileEntry

#: the permission bits a restore writes by default: rwx for user, group and others
PERMISSION_BITS = 0o777
#: with ``--keep-special-bits``: setuid, setgid and sticky as well
ALL_MODE_BITS = 0o7777


@dataclass(frozen=True)
class Owner:
    """Who owns an entry at backup time; any part may be unknown (None)."""

    uid: int | None = None
    gid: int | None = None
    owner: str | None = None
    group: str | None = None


@functools.lru_cache(maxsize=1024)
def user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


@functools.lru_cache(maxsize=1024)
def group_name(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def owner_of(st: os.stat_result) -> Owner:
    """The owner of a file as ``lstat`` saw it, with the names this host gives them."""
    return _owner(st.st_uid, st.st_gid)


@functools.lru_cache(maxsize=1024)
def _owner(uid: int, gid: int) -> Owner:
    """One (frozen) Owner per uid and gid: a filestore has a few, and millions of files."""
    return Owner(uid, gid, user_name(uid), group_name(gid))


@functools.lru_cache(maxsize=1024)
def _uid_named(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


@functools.lru_cache(maxsize=1024)
def _gid_named(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def restore_ids(owner: Owner) -> tuple[int, int] | None:
    """The uid and gid to give a restored entry: by name on this host, else the number
    recorded; -1 leaves a part unchanged; None when nothing was recorded."""
    uid = _uid_named(owner.owner) if owner.owner else None
    gid = _gid_named(owner.group) if owner.group else None
    uid = uid if uid is not None else owner.uid
    gid = gid if gid is not None else owner.gid
    if uid is None and gid is None:
        return None
    return (-1 if uid is None else uid, -1 if gid is None else gid)


def restored_mode(mode: int, *, keep_special_bits: bool = False) -> int:
    """Pure: the permission bits a restore gives a file recorded with ``mode``; the
    setuid, setgid and sticky bits only with ``keep_special_bits``."""
    return stat.S_IMODE(mode) & (ALL_MODE_BITS if keep_special_bits else PERMISSION_BITS)


def restores_owners() -> bool:
    """Only root can give files away: owners are restored when running as root."""
    return os.geteuid() == 0


def with_owner(entry: FileEntry, owner: Owner | None) -> FileEntry:
    """Pure: ``entry`` recording ``owner`` (unchanged when None or already recorded)."""
    if owner is None:
        return entry
    recorded = (entry.uid, entry.gid, entry.owner, entry.group)
    if recorded == (owner.uid, owner.gid, owner.owner, owner.group):
        return entry  # the common case, once per unchanged file: no dict, no copy
    fields = {"uid": owner.uid, "gid": owner.gid, "owner": owner.owner, "group": owner.group}
    return entry.model_copy(update=fields)
