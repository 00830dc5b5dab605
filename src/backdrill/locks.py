"""Locks in the repository: ``<prefix>/locks/<scope>``, one JSON object per holder.

A lock is created with a conditional write (``If-None-Match: *`` on S3, an exclusive
hard link on the local backend), read back to make sure the owner token is ours (a
store that ignores the condition would let two runs "win"), refreshed by a background
thread while the work runs, and deleted at the end, also on errors and interrupts.

A lock past its expiry, or held by a process of this host that no longer exists (a
run killed by SIGKILL), is taken over with a warning. Otherwise the second run fails
at once with :class:`LockHeld` (exit 6) naming the holder, or waits with ``wait``.

Scopes: ``db-<database>`` (``backup db``), ``files-<source>`` (``backup files``) and
``prune`` (the repository). ``prune`` holds ``prune`` and also the lock of each scope
it deletes in, so a backup and a prune of the same scope never run at the same time.

The shared filestore objects: ``backup files`` takes its ``files-<source>`` lock, THEN
waits until no ``prune`` lock is held (:func:`wait_until_free`), THEN lists the objects
it may reuse; ``prune`` takes ``prune``, THEN sweeps only if no ``files-*`` lock but its
own is held (:func:`live_holders`). Whichever wrote first, the other sees its lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self
from urllib.parse import quote

from backdrill.documents import read_document
from backdrill.errors import BackdrillError, IntegrityError, LockHeld, NotFound
from backdrill.interrupts import cleaning_up, raise_if_received
from backdrill.limits import MAX_LOCK_BYTES
from backdrill.storage.base import AlreadyExists, ProbeResult, Storage
from backdrill.timeutil import isoformat, parse_time, utcnow

log = logging.getLogger(__name__)

LOCKS_ROOT = "locks/"
DEFAULT_TTL = timedelta(minutes=5)
POLL_SECONDS = 2.0


def db_scope(database: str) -> str:
    return f"db-{quote(database, safe='')}"


def files_scope(source: str) -> str:
    return f"files-{quote(source, safe='')}"


REPOSITORY_SCOPE = "prune"


def lock_key(scope: str) -> str:
    return f"{LOCKS_ROOT}{scope}"


@dataclass(frozen=True)
class LockInfo:
    scope: str
    token: str
    command: str
    host: str
    pid: int
    run_id: str
    created_at: str
    expires_at: str

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=2).encode()

    @classmethod
    def parse(cls, data: bytes) -> LockInfo | None:
        """None when the object is not a lock this backdrill wrote (treated as expired)."""
        try:
            doc = json.loads(data)
            info = cls(**{k: doc[k] for k in cls.__dataclass_fields__})
            parse_time(info.expires_at)
        except (ValueError, KeyError, TypeError):
            return None
        return info

    def describe(self) -> str:
        return (
            f"{self.command} on host {self.host}, pid {self.pid}, run {self.run_id}, "
            f"since {self.created_at}"
        )


def is_stale(info: LockInfo | None, now: datetime, host: str) -> str | None:
    """Pure but for a pid probe: why the lock may be taken over, or None if it holds."""
    if info is None:
        return "unreadable lock object"
    if parse_time(info.expires_at) < now:
        return f"expired at {info.expires_at}"
    if info.host == host and not _pid_alive(info.pid):
        return f"process {info.pid} no longer runs on this host"
    return None


def _live_holder(storage: Storage, key: str, host: str) -> LockInfo | None:
    """The holder of the lock object ``key`` unless it is absent or stale."""
    try:
        holder = LockInfo.parse(storage.get_bytes(key))
    except NotFound:
        return None
    return holder if holder is not None and is_stale(holder, utcnow(), host) is None else None


def live_holders(storage: Storage, scope_prefix: str, host: str | None = None) -> list[LockInfo]:
    """The live holders of the locks ``locks/<scope_prefix>*`` (one listing, one read
    per lock): neither expired nor left by a dead process of this host."""
    host = host or socket.gethostname()
    keys = [info.key for info in storage.list_objects(lock_key(scope_prefix))]
    found = (_live_holder(storage, key, host) for key in keys)
    return [h for h in found if h is not None]


def wait_until_free(
    storage: Storage, scope: str, *, wait: timedelta | None = None, host: str | None = None
) -> None:
    """Return once ``locks/<scope>`` is not held (absent or stale), without taking it;
    LockHeld (exit 6) naming the holder when ``wait`` runs out first."""
    host = host or socket.gethostname()
    deadline = time.monotonic() + (wait.total_seconds() if wait else 0)
    while (holder := _live_holder(storage, lock_key(scope), host)) is not None:
        if time.monotonic() >= deadline:
            raise LockHeld(
                f"{scope} is locked by {holder.describe()}",
                hint=f"wait for it, or pass --wait DURATION; lock object {lock_key(scope)}",
            )
        log.info("waiting for the lock %s held by %s", lock_key(scope), holder.describe())
        time.sleep(min(POLL_SECONDS, max(0.05, deadline - time.monotonic())))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RepoLock:
    """``with RepoLock(storage, scope, ...):`` holds ``locks/<scope>`` for the block."""

    def __init__(
        self,
        storage: Storage,
        scope: str,
        *,
        run_id: str,
        command: str,
        host: str | None = None,
        ttl: timedelta = DEFAULT_TTL,
        wait: timedelta | None = None,
    ) -> None:
        self.storage = storage
        self.scope = scope
        self.key = lock_key(scope)
        self.run_id = run_id
        self.command = command
        self.host = host or socket.gethostname()
        self.ttl = ttl
        self.wait = wait
        self.token = secrets.token_hex(16)
        self.lost = False
        self._held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._written = False
        self._created = isoformat(utcnow())

    # -- reading and writing the object -------------------------------------------
    def _info(self) -> LockInfo:
        return LockInfo(
            scope=self.scope,
            token=self.token,
            command=self.command,
            host=self.host,
            pid=os.getpid(),
            run_id=self.run_id,
            created_at=self._created,
            expires_at=isoformat(utcnow() + self.ttl),
        )

    def _read(self) -> LockInfo | bool | None:
        """The current holder; None if unreadable; False if there is no lock object."""
        try:
            return LockInfo.parse(read_document(self.storage, self.key, limit=MAX_LOCK_BYTES))
        except NotFound:
            return False
        except IntegrityError:  # larger than any lock: not one this backdrill wrote
            return None

    def _try_once(self, attempts: int = 5) -> LockInfo | None:
        """Take the lock, or return the live holder.

        The object is read first, so that even a store ignoring ``If-None-Match`` does
        not let a later run overwrite a held lock; the conditional write then settles
        simultaneous takers, and the read-back catches a store that let both "win"."""
        if attempts <= 0:
            raise LockHeld(f"{self.scope}: the lock object {self.key} keeps changing")
        current = self._read()
        if current is not False:
            holder = current if isinstance(current, LockInfo) else None
            why = is_stale(holder, utcnow(), self.host)
            if why is None:
                assert holder is not None
                return holder
            log.warning(
                "taking over the lock %s: %s",
                self.key,
                why,
                extra={"fields": {"lock": self.key, "previous": holder and asdict(holder)}},
            )
            if self._read() == current:  # unchanged since we judged it: remove it
                self.storage.delete(self.key)
        try:
            self._written = True  # from here on the object may exist
            self.storage.put_bytes(self.key, self._info().to_bytes(), if_absent=True)
        except AlreadyExists:
            return self._try_once(attempts - 1)
        current = self._read()
        if isinstance(current, LockInfo) and current.token != self.token:
            log.error(
                "the storage seems to ignore conditional writes (If-None-Match): lock %s "
                "was overwritten by another run; locks are not reliable on this store",
                self.key,
            )
            return current
        return None

    def acquire(self) -> None:
        try:
            self._acquire()
        except BaseException:
            # an interrupt (or a failure) may come after the conditional write reached
            # the store: release() deletes the object only if it carries our token
            if self._written:
                self._held = True
                self.release()
            raise

    def _acquire(self) -> None:
        deadline = time.monotonic() + (self.wait.total_seconds() if self.wait else 0)
        while True:
            holder = self._try_once()
            if holder is None:
                break
            if time.monotonic() >= deadline:
                raise LockHeld(
                    f"{self.scope} is locked by {holder.describe()}",
                    hint=f"wait for it, or pass --wait DURATION; lock object {self.key}",
                )
            log.info("waiting for the lock %s held by %s", self.key, holder.describe())
            raise_if_received()  # a worker thread of a parallel run: the signal went to main
            time.sleep(min(POLL_SECONDS, max(0.05, deadline - time.monotonic())))
        self._held = True
        self._thread = threading.Thread(
            target=self._refresh_loop, name=f"lock-{self.scope}", daemon=True
        )
        self._thread.start()

    def _refresh_loop(self) -> None:
        interval = max(0.05, self.ttl.total_seconds() / 3)
        while not self._stop.wait(interval):
            try:
                current = self._read()
                if not isinstance(current, LockInfo) or current.token != self.token:
                    self.lost = True
                    log.error("lost the lock %s: another run took it over", self.key)
                    return
                self.storage.put_bytes(self.key, self._info().to_bytes())
            except BackdrillError as exc:
                log.warning("cannot refresh the lock %s: %s", self.key, exc)

    def release(self) -> None:
        with cleaning_up():
            self._release()

    def _release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if not self._held:
            return
        self._held = False
        with contextlib.suppress(BackdrillError):
            current = self._read()
            if isinstance(current, LockInfo) and current.token == self.token:
                self.storage.delete(self.key)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def probe_conditional_write(storage: Storage) -> ProbeResult:
    """``config check``: write a probe lock twice; the second write must be refused."""
    key = f"{LOCKS_ROOT}.probe-{secrets.token_hex(4)}"
    name = "conditional writes (locks)"
    try:
        storage.put_bytes(key, b"probe-1", if_absent=True)
        try:
            storage.put_bytes(key, b"probe-2", if_absent=True)
        except AlreadyExists:
            return ProbeResult(name, True, "a second create of the same key is refused")
        finally:
            storage.delete(key)
    except BackdrillError as exc:
        return ProbeResult(name, False, f"cannot write a probe lock: {exc}")
    return ProbeResult(
        name,
        False,
        "the store ignores If-None-Match: two runs could both take a lock; "
        "do not run backups and prune concurrently on this store",
    )
