"""The generated parts of docs/benchmarks.md: each benchmark rewrites only the text
between its own markers (``<!-- generated:NAME -->`` … ``<!-- /generated:NAME -->``),
so ``make bench`` refreshes every table and keeps the prose written around them."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_generated(name: str, text: str, doc: Path = DOC) -> None:
    """Put ``text`` between the markers of ``name`` in ``doc``; markers not there yet
    are added at the end (the first run of a new benchmark)."""
    begin, end = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
    block = f"{begin}\n{text.strip()}\n{end}"
    current = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        tail = rest.split(end, 1)[1]
        updated = head + block + tail
    else:
        updated = current.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(updated)
    print(f"wrote the {name} part of {doc}")
