"""Progress of long work: a rich progress bar on a terminal, nothing elsewhere.

One unit system, binary (KiB, MiB, as every summary prints them, timeutil.human_size).
A task has a total in bytes or in items (pg_restore's TOC entries); an *estimated*
total (``backup db``: the database's size, the dump is usually smaller) shows as
``~total`` and its percentage stops at 99 % until the task ends. While a bar is shown,
log lines go above it (rich redirects ``sys.stderr``; logs.py writes to the current
``sys.stderr``), never glued to it."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Literal, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from backdrill.runtime.text import terminal
from backdrill.runtime.timeutil import human_size

Unit = Literal["bytes", "items"]
ESTIMATE_CAP = 0.99  # an estimated total never shows more than 99 % before the end


class Advance(Protocol):
    def __call__(self, amount: int) -> None: ...


class Reporter:
    """Where long work reports its progress: ``task`` opens one task and yields the
    function that advances it. The one signature of ``task``; a subclass says how a task
    shows (``_show``)."""

    live = False

    def task(
        self,
        description: str,
        total: int | None = None,
        *,
        unit: Unit = "bytes",
        estimate: bool = False,
    ) -> AbstractContextManager[Advance]:
        return self._show(description, total, unit, estimate)

    def _show(
        self, description: str, total: int | None, unit: Unit, estimate: bool
    ) -> AbstractContextManager[Advance]:
        raise NotImplementedError


class NullReporter(Reporter):
    """Shows nothing (not a terminal, or no progress wanted)."""

    def _show(
        self, description: str, total: int | None, unit: Unit, estimate: bool
    ) -> AbstractContextManager[Advance]:
        return nullcontext(_ignore)


def _ignore(amount: int) -> None:
    pass


def shown_fraction(completed: float, total: float | None, *, estimate: bool) -> float | None:
    """Pure: the fraction a bar shows; None without a total. An estimate stops at 99 %."""
    if not total or total <= 0:
        return None
    fraction = min(completed / total, 1.0)
    return min(fraction, ESTIMATE_CAP) if estimate else fraction


def amount_text(completed: float, total: float | None, unit: Unit, *, estimate: bool) -> str:
    """Pure: ``12.0/~40.0 MiB`` or ``37/120 items`` (``12.0 MiB`` without a total)."""
    if unit == "items":
        done = f"{int(completed)}"
        return f"{done}/{int(total)} items" if total else f"{done} items"
    done = human_size(completed)
    if not total:
        return done
    mark = "~" if estimate else ""
    value, suffix = done.rsplit(" ", 1)
    whole, whole_suffix = human_size(total).rsplit(" ", 1)
    if suffix == whole_suffix:
        return f"{value}/{mark}{whole} {suffix}"
    return f"{done}/{mark}{whole} {whole_suffix}"


class _AmountColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        estimate = bool(task.fields.get("estimate"))
        return Text(amount_text(task.completed, task.total, task.fields["unit"], estimate=estimate))


class _PercentColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        fraction = shown_fraction(
            task.completed, task.total, estimate=bool(task.fields.get("estimate"))
        )
        return Text("" if fraction is None else f"{fraction * 100:3.0f}%")


class _SpeedColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("")
        if task.fields["unit"] == "items":
            return Text(f"{speed:.1f} items/s")
        return Text(f"{human_size(speed)}/s")


class RichReporter(Reporter):
    """One live display for all the tasks running at once (``backup db --parallel``:
    one bar per database, each named after it); it shows while any task runs."""

    live = True

    def __init__(self, console: Console) -> None:
        self.console = console
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._tasks = 0

    def _new_progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            _PercentColumn(),
            _AmountColumn(),
            _SpeedColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )

    def _enter(self) -> Progress:
        with self._lock:
            if self._progress is None:
                self._progress = self._new_progress()
                self._progress.start()
            self._tasks += 1
            return self._progress

    def _leave(self, progress: Progress, task_id: TaskID | None) -> None:
        with self._lock:
            if task_id is not None:
                progress.remove_task(task_id)
            self._tasks -= 1
            if self._tasks == 0:
                progress.stop()
                self._progress = None

    @contextmanager
    def _show(
        self, description: str, total: int | None, unit: Unit, estimate: bool
    ) -> Iterator[Advance]:
        progress = self._enter()
        task_id: TaskID | None = None
        try:
            task_id = progress.add_task(
                terminal(description), total=total, unit=unit, estimate=estimate
            )
            done = 0
            lock = threading.Lock()  # workers of a pool advance the same task

            def advance(amount: int) -> None:
                nonlocal done
                assert task_id is not None
                with lock:
                    done += amount
                    if total and done > total * (ESTIMATE_CAP if estimate else 1.0):
                        # past the estimate (or a count that overshoots): grow the total so
                        # the bar stays just short of its end and the ETA stays finite
                        grown = done / ESTIMATE_CAP if estimate else done
                        progress.update(task_id, total=grown)
                    progress.advance(task_id, amount)

            yield advance
        finally:
            self._leave(progress, task_id)


def default_reporter() -> NullReporter | RichReporter:
    if sys.stderr.isatty():
        return RichReporter(Console(stderr=True))
    return NullReporter()
