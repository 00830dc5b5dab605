"""Progress of long work: a rich progress bar on a terminal, nothing elsewhere."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from backdrill.text import terminal


class Advance(Protocol):
    def __call__(self, amount: int) -> None: ...


class Reporter(Protocol):
    def task(
        self, description: str, total: int | None = None
    ) -> AbstractContextManager[Advance]: ...


class NullReporter:
    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Advance]:
        yield lambda amount: None


class RichReporter:
    def __init__(self, console: Console) -> None:
        self.console = console

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Advance]:
        progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        with progress:
            task_id = progress.add_task(terminal(description), total=total)
            yield lambda amount: progress.advance(task_id, amount)


def default_reporter() -> NullReporter | RichReporter:
    if sys.stderr.isatty():
        return RichReporter(Console(stderr=True))
    return NullReporter()
