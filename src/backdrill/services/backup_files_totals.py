"""What one ``backup files`` run counts as it goes: the totals its snapshot root
records, the warnings it logs (the first :data:`MAX_LOGGED`), and what it read."""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from typing import IO

from backdrill.files.snapshot import FileEntry, SkippedEntry
from backdrill.runtime.progress import Advance

log = logging.getLogger("backdrill.services.backup_files")

VANISHED = "vanished during backup"
#: a listed file found, when read, to be a symlink or a special file
REPLACED = "replaced by a symlink or special file during backup"
UNREADABLE = "cannot read"
MAX_LOGGED = 20


@dataclass
class Totals:
    """What the snapshot root records, counted as entries stream past."""

    files: int = 0
    bytes: int = 0
    changed: int = 0
    skipped: int = 0
    reused: int = 0
    warnings: list[str] = field(default_factory=list)
    warning_count: int = 0
    unreadable: list[SkippedEntry] = field(default_factory=list)
    unreadable_count: int = 0

    def warn(self, text: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < MAX_LOGGED:
            self.warnings.append(text)
            log.warning(text)

    def entry(self, entry: FileEntry) -> None:
        if entry.type == "file":
            self.files += 1
        self.bytes += entry.size
        if entry.status == "changed":
            self.changed += 1
            self.warn(f"{entry.path} changed while it was read (twice); stored as last read")

    def skip(self, skipped: SkippedEntry) -> None:
        self.skipped += 1
        self.changed += skipped.reason in (VANISHED, REPLACED)
        if skipped.reason.startswith("cannot "):
            self.unreadable_count += 1
            if len(self.unreadable) < MAX_LOGGED:
                self.unreadable.append(skipped)
        self.warn(f"skipped {skipped.path}: {skipped.reason}")


@dataclass
class ReadStats:
    files: int = 0
    bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, size: int) -> None:
        with self.lock:
            self.files += 1
            self.bytes += size


class HashingSpool:
    def __init__(self, spool: IO[bytes], advance: Advance) -> None:
        self.spool = spool
        self.advance = advance
        self.digest = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.spool.write(chunk)
        self.advance(len(chunk))
