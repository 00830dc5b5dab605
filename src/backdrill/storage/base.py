"""The storage interface every backend implements: keys relative to the repository root."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal, Self


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime
    etag: str | None = None


@dataclass(frozen=True)
class PendingUpload:
    """A multipart upload (S3) or a partial file (local) that never completed."""

    key: str
    upload_id: str
    initiated: datetime


@dataclass(frozen=True)
class ProbeResult:
    """One line of ``config check``: what was checked, whether it holds, and detail;
    ``warning``: it holds but departs from the standard (shown as WARNING, exit 0)."""

    name: str
    ok: bool
    detail: str
    warning: bool = False


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared by the backend (callers never test its type).

    ``object_lock``: objects can be written with a retention that nobody, not even the
    bucket's owner, can shorten (GOVERNANCE: only with a bypass permission; COMPLIANCE:
    nobody); ``detail`` says why or why not, for one log line or ``config check`` row."""

    object_lock: bool
    detail: str


@dataclass(frozen=True)
class Retention:
    """Object lock retention of one write."""

    mode: Literal["GOVERNANCE", "COMPLIANCE"]
    until: datetime


class AlreadyExists(Exception):
    """A conditional create found the key present."""


class ObjectWriter(ABC):
    """A streaming upload: the object becomes visible only on :meth:`commit`.

    Used as a context manager, it commits on a clean exit and aborts on any exception,
    so no half-written object is ever seen under its final name.
    """

    def __init__(self) -> None:
        self.bytes_written = 0
        self._done = False

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _abort(self) -> None: ...

    def commit(self) -> None:
        if not self._done:
            self._done = True
            self._commit()

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self._abort()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class Storage(ABC):
    """A repository: an S3 bucket and prefix, or a local directory."""

    #: printable location, without secrets
    url: str
    #: the directory whose files are the objects, for a backend that has one (a local
    #: repository); None for a remote store. Declared, so callers never test the type.
    local_root: Path | None = None

    @abstractmethod
    def open_writer(self, key: str) -> ObjectWriter: ...

    @abstractmethod
    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        if_absent: bool = False,
        retention: Retention | None = None,
    ) -> None:
        """Store a small object; with ``if_absent`` raise AlreadyExists if the key exists.
        ``retention`` (only where :meth:`capabilities` declares ``object_lock``) locks it."""

    def capabilities(self) -> Capabilities:
        """What this repository supports; backends with object lock override this."""
        return Capabilities(object_lock=False, detail=f"{self.url} has no object lock")

    def version_counts(self, prefix: str) -> dict[str, int] | None:
        """How many versions (delete markers included) each key under ``prefix`` has, or
        None where the backend keeps no versions (a locked bucket keeps every one)."""
        return None

    @abstractmethod
    def open_reader(self, key: str) -> BinaryIO:
        """A stream of the object's bytes; NotFound when it does not exist."""

    def get_bytes(self, key: str) -> bytes:
        with self.open_reader(key) as stream:
            return stream.read()

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """At most ``length`` bytes of the object from ``offset``: fewer when it ends
        before (the caller checks the length); NotFound when it does not exist.
        Backends override this with one ranged read."""
        with self.open_reader(key) as stream:
            skipped = 0
            while skipped < offset:
                got = stream.read(min(offset - skipped, 1024 * 1024))
                if not got:
                    return b""
                skipped += len(got)
            return stream.read(length) if length > 0 else b""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None: ...

    @abstractmethod
    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every committed object whose key starts with ``prefix``, in key order."""

    def list_dirs(self, prefix: str) -> list[str]:
        """Names of the immediate sub-"directories" of ``prefix`` (which ends with ``/``),
        sorted. Backends override this with a cheaper listing than every object."""
        names = set()
        for info in self.list_objects(prefix):
            rest = info.key[len(prefix) :]
            if "/" in rest:
                names.add(rest.split("/", 1)[0])
        return sorted(names)

    @abstractmethod
    def delete(self, key: str) -> None: ...

    def delete_many(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.delete(key)

    def deletion_blocker(self, key: str) -> str | None:
        """Why ``key`` cannot be deleted now (object lock retention, legal hold), or None."""
        return None

    @abstractmethod
    def pending_uploads(self, prefix: str = "") -> list[PendingUpload]: ...

    @abstractmethod
    def abort_pending(self, upload: PendingUpload) -> None: ...

    @abstractmethod
    def probe(self) -> list[ProbeResult]:
        """Reach the repository and report what works (``config check``)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
