"""SIGINT/SIGTERM as an exception, except inside clean-up code.

The CLI's signal handler calls :func:`deliver`: outside a :func:`shielded` block it
raises :class:`Interrupted` at once, so every ``with`` block unwinds; inside one (a
sandbox teardown, an upload abort, a lock release) it records the signal, lets the
clean-up finish, and raises at the end of the block. A clean-up cut in half would leave
the very things an interrupt must not leave: a running postmaster, a directory, a lock.

:func:`cleaning_up` marks a clean-up that talks to the storage (an upload abort, a lock
release, removing uncommitted objects): after a failure it may wait for the store to
come back (``storage -> retry -> cleanup_seconds``); after a signal it must not. It also
marks a sandbox's stop: the programs it runs (``pg_ctl stop``) are not terminated with
the others after a signal (``pg.command.terminate_running``).

Worker threads (``backup db --parallel``, ``drill run --all --parallel``) never get the
signal: they call :func:`raise_if_received` where they may start new work, and the
shield depth is counted under a lock, since several threads may be cleaning up at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from backdrill.runtime.errors import Interrupted

_depth = 0
_pending: int | None = None
_received: int | None = None  # the signal number
_depth_lock = threading.RLock()  # re-entrant: the handler runs on the main thread
_cleaning_up: ContextVar[bool] = ContextVar("cleaning_up", default=False)


def reset() -> None:
    """A new run in this process (the CLI's main(), called again by in-process tests)."""
    global _depth, _pending, _received
    _depth, _pending, _received = 0, None, None


def received() -> bool:
    """A signal arrived: clean-ups should keep their retries short (exit within 10 s)."""
    return _received is not None


def raise_if_received() -> None:
    """In a worker thread, before starting new work: the signal the main thread got."""
    if _received is not None and not _cleaning_up.get():
        raise Interrupted(_received)


def deliver(signum: int) -> None:
    """Called from the signal handler (main thread)."""
    global _pending, _received  # noqa: PLW0603 - signal state is process-wide by nature
    _received = signum
    with _depth_lock:
        if _depth > 0:
            _pending = signum
            return
    raise Interrupted(signum)


@contextmanager
def shielded() -> Iterator[None]:
    """Run a clean-up to its end even if a signal arrives; raise Interrupted after."""
    global _depth, _pending  # noqa: PLW0603
    with _depth_lock:
        _depth += 1
    try:
        yield
    finally:
        with _depth_lock:
            _depth -= 1
            signum = None
            if _depth == 0 and _pending is not None:
                signum, _pending = _pending, None
        if signum is not None:
            raise Interrupted(signum)


@contextmanager
def cleaning_up() -> Iterator[None]:
    """A shielded clean-up of storage state; see :func:`in_cleanup`."""
    token = _cleaning_up.set(True)
    try:
        with shielded():
            yield
    finally:
        _cleaning_up.reset(token)


def in_cleanup() -> bool:
    """Inside :func:`cleaning_up` (in this thread)."""
    return _cleaning_up.get()
