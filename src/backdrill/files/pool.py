"""Run a function over many items on a thread pool with a bounded number in flight,
failing fast: after the first error no more items are submitted, the pending ones are
cancelled, and the error is raised once the running ones have finished."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Generic, TypeVar

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


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), streamed."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


@dataclass(frozen=True)
class Done(Generic[R]):
    """An item whose result is already known: passes through :func:`ordered_map` in its
    place without a thread."""

    value: R


def grouped(items: Iterable[T | Done[R]], size: int) -> Iterator[list[T] | Done[list[R]]]:
    """Pure: ``items`` in order, runs of at most ``size`` items to compute (a list: one
    pool task, not one per item) and runs of at most ``size`` ``Done`` ones (one
    ``Done`` of their values)."""
    todo: list[T] = []
    done: list[R] = []
    for item in items:
        if isinstance(item, Done):
            if todo:
                yield todo
                todo = []
            done.append(item.value)
            if len(done) >= size:
                yield Done(done)
                done = []
        else:
            if done:
                yield Done(done)
                done = []
            todo.append(item)
            if len(todo) >= size:
                yield todo
                todo = []
    if todo:
        yield todo
    if done:
        yield Done(done)


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T | Done[R]],
    *,
    workers: int,
    window: int,
    name: str,
) -> Iterator[R]:
    """``fn(item)`` for each item (``Done`` ones as they are), computed concurrently,
    yielded in input order, at most ``window`` items held at once (memory bounded
    whatever the count). The first error is raised in its place; the pending items are
    then cancelled."""
    held: deque[Future[R] | Done[R]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix=name) as pool:
        try:
            for item in items:
                if isinstance(item, Done):
                    held.append(item)
                else:
                    held.append(pool.submit(fn, item))
                while len(held) >= window or (held and _ready(held[0])):
                    yield _result(held.popleft())
            while held:
                yield _result(held.popleft())
        finally:
            for pending in held:
                if isinstance(pending, Future):
                    pending.cancel()


def _ready(held: Future[R] | Done[R]) -> bool:
    return isinstance(held, Done) or held.done()


def _result(held: Future[R] | Done[R]) -> R:
    return held.value if isinstance(held, Done) else held.result()
