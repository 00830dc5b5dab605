"""Run one piece of work per item (a database) on a bounded pool of threads, results in
the items' order. Each piece returns its own outcome (failures isolated); an interrupt
stops the whole run cleanly.

The signal reaches the main thread only (interrupts.py). On it: the items not started
are cancelled, the running children (pg_dump, pg_restore) are terminated so that each
worker's own clean-up runs (uncommitted objects removed, its lock released, its sandbox
torn down), and once every worker has finished, Interrupted is raised."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from backdrill.pg.command import terminate_running
from backdrill.runtime.errors import Interrupted
from backdrill.runtime.interrupts import raise_if_received, shielded

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
POLL_SECONDS = 0.2


def run_bounded(items: Sequence[T], parallel: int, work: Callable[[T], R]) -> list[R]:
    """``work(item)`` for each item, at most ``parallel`` at once (in this thread when 1)."""
    if parallel <= 1 or len(items) <= 1:
        return [work(item) for item in items]

    def guarded(item: T) -> R:
        raise_if_received()  # started after the signal: do nothing
        return work(item)

    pool = ThreadPoolExecutor(min(parallel, len(items)), thread_name_prefix="each")
    futures = [pool.submit(guarded, item) for item in items]
    try:
        pending: set[Future[R]] = set(futures)
        while pending:
            done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                error = future.exception()
                if isinstance(error, Interrupted):
                    raise error
            raise_if_received()  # the signal came while a worker was shielded
        return [future.result() for future in futures]
    except BaseException:
        with shielded():
            _stop_all(futures)
        raise
    finally:
        pool.shutdown(wait=True)


def _stop_all(futures: list[Future[R]]) -> None:
    """Cancel what has not started; terminate the children of what runs until it ends."""
    for future in futures:
        future.cancel()
    running = [f for f in futures if not f.done()]
    log.info("stopping %d running task(s)", len(running))
    while running:
        terminate_running()
        wait(running, timeout=POLL_SECONDS)
        running = [f for f in running if not f.done()]
