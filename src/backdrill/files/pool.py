"""Run a function over many items on a thread pool with a bounded number in flight,
failing fast: after the first error no more items are submitted, the pending ones are
cancelled, and the error is raised once the running ones have finished."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def bounded_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int, name: str) -> list[R]:
    """``[fn(item) for item in items]``, concurrently, at most ``2 x workers`` queued."""
    slots = threading.BoundedSemaphore(workers * 2)
    failed = threading.Event()
    futures: list[Future[R]] = []

    def finished(future: Future[R]) -> None:
        slots.release()
        if not future.cancelled() and future.exception() is not None:
            failed.set()

    with ThreadPoolExecutor(workers, thread_name_prefix=name) as pool:
        try:
            for item in items:
                slots.acquire()
                if failed.is_set():
                    slots.release()
                    break
                try:
                    future = pool.submit(fn, item)
                except BaseException:
                    slots.release()
                    raise
                future.add_done_callback(finished)
                futures.append(future)
            return [f.result() for f in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise
