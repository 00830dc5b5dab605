"""Linux inotify over ctypes: watch one directory, read what happened to its entries.

Only what the directory-format dump watcher needs (``inotify_init1``,
``inotify_add_watch``, ``read``). Where inotify is missing (not Linux, no libc symbol,
the per-user instance limit reached), :func:`open_watch` raises :class:`Unavailable`.
"""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass
from pathlib import Path

MODIFY = 0x00000002
CLOSE_WRITE = 0x00000008
CLOSE_NOWRITE = 0x00000010
OPEN = 0x00000020
MOVED_FROM = 0x00000040
MOVED_TO = 0x00000080
CREATE = 0x00000100
DELETE = 0x00000200
Q_OVERFLOW = 0x00004000
IGNORED = 0x00008000

_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len
_NONBLOCK = os.O_NONBLOCK
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_READ_SIZE = 256 * 1024


class Unavailable(Exception):
    """inotify cannot be used here."""


@dataclass(frozen=True)
class Event:
    mask: int
    name: str  # the entry's name in the watched directory; "" for the directory itself


class Watch:
    """A non-blocking inotify instance with one watched directory."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self) -> list[Event]:
        """Every event queued now (none when the queue is empty)."""
        try:
            buf = os.read(self.fd, _READ_SIZE)
        except BlockingIOError:
            return []
        return parse(buf)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def parse(buf: bytes) -> list[Event]:
    """Pure: the ``struct inotify_event`` records of one read."""
    events: list[Event] = []
    offset = 0
    while offset + _HEADER.size <= len(buf):
        _wd, mask, _cookie, length = _HEADER.unpack_from(buf, offset)
        start = offset + _HEADER.size
        raw = buf[start : start + length].split(b"\0", 1)[0]
        events.append(Event(mask, os.fsdecode(raw)))
        offset = start + length
    return events


def open_watch(directory: Path, mask: int) -> Watch:
    """Watch ``directory`` for ``mask`` events, or raise Unavailable (with why)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        init1 = libc.inotify_init1
        add_watch = libc.inotify_add_watch
    except (OSError, AttributeError) as exc:
        raise Unavailable(f"no inotify in this C library ({exc})") from None
    init1.argtypes = [ctypes.c_int]
    init1.restype = ctypes.c_int
    add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    add_watch.restype = ctypes.c_int
    fd = int(init1(_NONBLOCK | _CLOEXEC))
    if fd < 0:
        raise Unavailable(os.strerror(ctypes.get_errno()))
    if int(add_watch(fd, os.fsencode(directory), mask)) < 0:
        why = os.strerror(ctypes.get_errno())
        os.close(fd)
        raise Unavailable(why)
    return Watch(fd)
