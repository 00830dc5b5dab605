"""What a backup's content is, beyond its row counts: per table an order-independent
digest of its rows, per large object its size and digest, per sequence its value.

Recorded in the manifest at backup time from the database itself, in the dump's
snapshot (``pg/content.py`` computes them), recomputed in the restored copy and compared
here, object by object, with pure functions. Tables are identified by ``(schema, name)``,
never by a joined string: ``x."y.z"`` and ``"x.y".z`` are two tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backdrill.odoo.checks import Check

#: how the digests are computed: bump when the SQL or the session settings change
ALGORITHM = "row-sum64-v1"
#: per table: ``record``, the sum of hash_record_extended over the rows (no text
#: conversion: three times faster), where every column's type hashes by value; ``text``,
#: the sum of the first 64 bits of the md5 of each row's text form, elsewhere
Method = Literal["record", "text"]
#: names shown per check detail before "and N more"
SHOWN = 10
_MAX_NAME = 120
_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*")

TableKey = tuple[str, str]


class TableRef(BaseModel):
    """A relation (table, sequence) by schema and name; the content facts extend it."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_name: str = Field(alias="schema")
    name: str

    @property
    def key(self) -> TableKey:
        return (self.schema_name, self.name)


class TableContent(TableRef):
    """A table's rows and the sum (decimal) of a 64-bit digest of each of its rows."""

    rows: int
    sum64: str
    method: Method = "text"


class LargeObjectContent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    oid: int
    size: int
    sha256: str


class SequenceValue(TableRef):
    last_value: int
    is_called: bool


class ContentFacts(BaseModel):
    """The ``content`` field of a manifest (absent: the backup was counted, not digested)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    algorithm: str = ALGORITHM
    tables: list[TableContent] = []
    large_objects: list[LargeObjectContent] = []
    sequences: list[SequenceValue] = []


def display(schema: str, name: str) -> str:
    """``schema.name`` with each part quoted as SQL would need it, control characters
    escaped and the length bounded: safe in a report, and unambiguous."""
    return f"{_ident(schema)}.{_ident(name)}"


def _ident(part: str) -> str:
    if _PLAIN.fullmatch(part) is None:
        part = '"' + part.replace('"', '""') + '"'
    part = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in part)
    return part if len(part) <= _MAX_NAME else part[:_MAX_NAME] + "…"


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def compare_row_counts(
    expected: Mapping[TableKey, int],
    actual: Mapping[TableKey, int],
) -> Check:
    """Every table of the manifest restored with exactly its row count, and no other."""
    want = dict(expected)
    missing = sorted(set(want) - set(actual))
    extra = sorted(set(actual) - set(want))
    differ = sorted(t for t in set(want) & set(actual) if want[t] != actual[t])
    if not (missing or extra or differ):
        total = sum(want.values())
        return Check("row_counts", "pass", f"{len(want)} tables, {total} rows, all equal")
    parts = []
    if differ:
        shown = [f"{display(*t)}: expected {want[t]}, got {actual[t]}" for t in differ]
        parts.append(f"{len(differ)} table(s) differ ({_listed(shown)})")
    if missing:
        names = [display(*t) for t in missing]
        parts.append(f"{len(missing)} table(s) missing ({_listed(names)})")
    if extra:
        names = [display(*t) for t in extra]
        parts.append(f"{len(extra)} unexpected table(s) ({_listed(names)})")
    return Check("row_counts", "fail", "; ".join(parts))


def compare_tables(
    expected: Iterable[TableContent],
    actual: Mapping[TableKey, TableContent],
) -> Check:
    """Each table's digest equal to the manifest's. Missing and extra tables are the
    row-count check's to report."""
    differ: list[str] = []
    compared = 0
    for table in expected:
        got = actual.get(table.key)
        if got is None:
            continue
        compared += 1
        if (got.rows, got.sum64) != (table.rows, table.sum64):
            differ.append(display(*table.key))
    if differ:
        return Check(
            "content",
            "fail",
            f"the content of {len(differ)} table(s) differs from the backup: {_listed(differ)}",
        )
    return Check("content", "pass", f"{compared} tables: the content of every row matches")


def compare_large_objects(
    expected: list[LargeObjectContent], actual: Mapping[int, LargeObjectContent]
) -> Check:
    want = {lo.oid: lo for lo in expected}
    missing = sorted(set(want) - set(actual))
    extra = sorted(set(actual) - set(want))
    differ = sorted(
        oid
        for oid in set(want) & set(actual)
        if (want[oid].size, want[oid].sha256) != (actual[oid].size, actual[oid].sha256)
    )
    if not (missing or extra or differ):
        total = sum(lo.size for lo in expected)
        return Check(
            "large_objects", "pass", f"{len(want)} large objects, {total} bytes, all equal"
        )
    parts = []
    if differ:
        shown = [
            f"oid {oid} (size expected {want[oid].size}, got {actual[oid].size})"
            if want[oid].size != actual[oid].size
            else f"oid {oid}"
            for oid in differ
        ]
        parts.append(f"{len(differ)} large object(s) differ: {_listed(shown)}")
    if missing:
        parts.append(f"{len(missing)} missing: {_listed([f'oid {o}' for o in missing])}")
    if extra:
        parts.append(f"{len(extra)} unexpected: {_listed([f'oid {o}' for o in extra])}")
    return Check("large_objects", "fail", "; ".join(parts))


def compare_sequences(
    expected: list[SequenceValue], actual: Mapping[TableKey, SequenceValue]
) -> Check:
    """Each sequence restored at its value."""
    differ: list[str] = []
    missing: list[str] = []
    for seq in expected:
        got = actual.get(seq.key)
        if got is None:
            missing.append(display(*seq.key))
        elif (got.last_value, got.is_called) != (
            seq.last_value,
            seq.is_called,
        ):
            differ.append(
                f"{display(*seq.key)}: expected {seq.last_value}"
                f"{'' if seq.is_called else ' (not called)'}, got {got.last_value}"
                f"{'' if got.is_called else ' (not called)'}"
            )
    if not (differ or missing):
        return Check("sequences", "pass", f"{len(expected)} sequences at their values")
    parts = []
    if differ:
        parts.append(f"{len(differ)} sequence(s) differ: {_listed(differ)}")
    if missing:
        parts.append(f"{len(missing)} sequence(s) missing: {_listed(missing)}")
    return Check("sequences", "fail", "; ".join(parts))


def listed_check(name: str, keys: Iterable[TableKey], why: str) -> Check | None:
    """A ``skip`` check naming objects whose content is not compared, and why."""
    names = sorted(display(*k) for k in keys)
    if not names:
        return None
    return Check(name, "skip", f"{len(names)} not compared ({why}): {_listed(names)}")
