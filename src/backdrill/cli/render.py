"""Rendering helpers shared by the commands: tables and JSON on stdout."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def print_json(console: Console, data: Any) -> None:
    console.print_json(json.dumps(data, default=str), indent=2, highlight=False)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    result = Table(title=title, title_justify="left", header_style="bold")
    for name in columns:
        justify = "right" if name in {"size", "raw", "age", "rows", "duration"} else "left"
        result.add_column(name, justify=justify, no_wrap=name in {"id", "created"})  # type: ignore[arg-type]
    for row in rows:
        result.add_row(*(str(cell) for cell in row))
    return result
