"""Rendering helpers shared by the commands: tables and JSON on stdout, on a console
that never lets a control character of a name through."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from backdrill.runtime.text import terminal


class TerminalConsole(Console):
    """A rich console whose every string (printed, in a table cell or title) passes
    through ``text.terminal``: names from the repository or the database reach the
    terminal with their escape sequences, bells and newlines shown, never obeyed."""

    def render_str(self, text: str, **options: Any) -> Text:
        return super().render_str(terminal(text), **options)


def terminal_console(**options: Any) -> TerminalConsole:
    return TerminalConsole(markup=False, highlight=False, **options)


def print_json(console: Console, data: Any) -> None:
    console.print_json(json.dumps(data, default=str), indent=2, highlight=False)


def warn(message: str) -> None:
    """One line on stderr, names escaped for the terminal."""
    typer.echo(terminal(message), err=True)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    result = Table(title=title, title_justify="left", header_style="bold")
    for name in columns:
        justify = "right" if name in {"size", "raw", "age", "rows", "duration"} else "left"
        result.add_column(name, justify=justify, no_wrap=name in {"id", "created"})  # type: ignore[arg-type]
    for row in rows:
        result.add_row(*(str(cell) for cell in row))
    return result
