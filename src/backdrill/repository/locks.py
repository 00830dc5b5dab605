"""Locks in the repository: ``<prefix>/locks/<scope>``, one JSON object per holder.

A lock is created with a conditional write (``If-None-Match: *`` on S3, an exclusive
hard link on the local backend), read back to make sure the owner token is ours (a
store that ignores the condition would let two runs "win"), refreshed by a background
thread while the work runs, and deleted at the end, also on errors and interrupts.

A lock past its expiry, or held by a process of this host that no longer exists (a
run killed by SIGKILL), is taken over with a warning. Otherwise the second run fails
at once with :class:`LockHeld` (exit 6) naming the holder, its expiry and how to clear
it, or waits with ``wait``. A lock object this backdrill did not write is a foreign lock
(:mod:`backdrill.repository.lockinfo`): named, never taken over, removed only by ``unlock --force``.

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
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import asdict
from datetime import timedelta
from typing import Self
from urllib.parse import quote

from backdrill.repository.documents import read_document
from backdrill.repository.layout import DEFAULT_SOURCE, lock_key
from backdrill.repository.limits import MAX_LOCK_BYTES
from backdrill.repository.lockinfo import ForeignLock, Holder, LockInfo, held_message, is_stale
from backdrill.runtime.errors import BackdrillError, IntegrityError, LockHeld, NotFound
from backdrill.runtime.interrupts import cleaning_up, raise_if_received
from backdrill.runtime.timeutil import isoformat, utcnow
from backdrill.storage.base import AlreadyExists, ProbeResult, Storage

log = logging.getLogger(__name__)

DEFAULT_TTL = timedelta(minutes=5)
POLL_SECONDS = 2.0


def db_scope(database: str, source: str = DEFAULT_SOURCE) -> str:
    """``db-<database>``; of a named source ``db~<source>-<database>`` (``db-`` never
    starts a named source's scope, so no two share a lock)."""
    if source == DEFAULT_SOURCE:
        return f"db-{quote(database, safe='')}"
    return f"db~{quote(source, safe='')}-{quote(database, safe='')}"


def files_scope(source: str) -> str:
    return f"files-{quote(source, safe='')}"


REPOSITORY_SCOPE = "prune"


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

    def _read(self) -> Holder | None:
        """The current holder; None if there is no lock object."""
        return read_holder(self.storage, self.key)

    def _try_once(self, attempts: int = 5) -> Holder | None:
        """Take the lock, or return the live holder.

        The object is read first, so that even a store ignoring ``If-None-Match`` does
        not let a later run overwrite a held lock; the conditional write then settles
        simultaneous takers, and the read-back catches a store that let both "win"."""
        if attempts <= 0:
            raise LockHeld(f"{self.scope}: the lock object {self.key} keeps changing")
        current = self._read()
        if current is not None:
            why = is_stale(current, utcnow(), self.host)
            if why is None:
                return current
            log.warning(
                "taking over the lock %s: %s",
                self.key,
                why,
                extra={"fields": {"lock": self.key, "previous": asdict(current)}},
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
                message, hint = held_message(self.scope, self.key, holder, utcnow(), self.ttl)
                raise LockHeld(message, hint=hint)
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

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_holder(storage: Storage, key: str) -> Holder | None:
    """What the lock object ``key`` says; None when there is none."""
    try:
        return LockInfo.parse(read_document(storage, key, limit=MAX_LOCK_BYTES))
    except NotFound:
        return None
    except IntegrityError:  # larger than any lock: not one this backdrill wrote
        return ForeignLock(f"larger than {MAX_LOCK_BYTES} bytes")


def probe_conditional_write(storage: Storage) -> ProbeResult:
    """``config check``: write a probe lock twice; the second write must be refused."""
    key = lock_key(f".probe-{secrets.token_hex(4)}")
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


def _live_holder(storage: Storage, key: str, host: str) -> Holder | None:
    """The holder of the lock object ``key`` unless it is absent or stale (a foreign
    lock holds: it is never taken for stale)."""
    holder = read_holder(storage, key)
    return holder if holder is not None and is_stale(holder, utcnow(), host) is None else None


def live_holders(
    storage: Storage, scope_prefix: str, host: str | None = None
) -> list[tuple[str, Holder]]:
    """The live locks ``locks/<scope_prefix>*`` (one listing, one read per lock), each
    with its key: neither expired nor left by a dead process of this host."""
    host = host or socket.gethostname()
    keys = [info.key for info in storage.list_objects(lock_key(scope_prefix))]
    found = ((key, _live_holder(storage, key, host)) for key in keys)
    return [(key, h) for key, h in found if h is not None]


def wait_until_free(
    storage: Storage, scope: str, *, wait: timedelta | None = None, host: str | None = None
) -> None:
    """Return once ``locks/<scope>`` is not held (absent or stale), without taking it;
    LockHeld (exit 6) naming the holder when ``wait`` runs out first."""
    host = host or socket.gethostname()
    key = lock_key(scope)
    deadline = time.monotonic() + (wait.total_seconds() if wait else 0)
    while (holder := _live_holder(storage, key, host)) is not None:
        if time.monotonic() >= deadline:
            message, hint = held_message(scope, key, holder, utcnow(), DEFAULT_TTL)
            raise LockHeld(message, hint=hint)
        log.info("waiting for the lock %s held by %s", key, holder.describe())
        time.sleep(min(POLL_SECONDS, max(0.05, deadline - time.monotonic())))
