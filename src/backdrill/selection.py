"""Pure choice of one committed entry (a database backup, a files snapshot) by
``latest``, by id, and ``--before``: the same rules for both kinds, in their own words."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from backdrill.errors import NotFound, UsageError


class Dated(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...


E = TypeVar("E", bound=Dated)


@dataclass(frozen=True)
class Words:
    """How messages name the entries, their groups and the option choosing a group."""

    entry: str  # "backup"
    entries: str  # "backups"
    committed: str  # "committed backup"
    group: str  # "database"
    groups: str  # "databases"
    option: str  # "--database NAME"
    listing: str  # "`backdrill list db`"


def select(
    entries: Iterable[E],
    spec: str,
    *,
    group_of: Callable[[E], str],
    group: str | None,
    before: datetime | None,
    words: Words,
) -> E:
    """The entry named by ``spec`` (an id or ``latest``); ``latest``: the newest of
    ``group`` (of the only group there is, when None) created strictly before ``before``."""
    candidates = [e for e in entries if group is None or group_of(e) == group]
    if spec != "latest":
        found = next((e for e in candidates if e.id == spec), None)
        if found is None:
            raise NotFound(f"no {words.committed} with id {spec}", hint=f"see {words.listing}")
        if before is not None and found.created_at >= before:
            raise NotFound(f"{words.entry} {spec} was created at or after --before")
        return found
    if before is not None:
        candidates = [e for e in candidates if e.created_at < before]
    if not candidates:
        scope = f" of {words.group} {group}" if group else ""
        when = f" before {before.isoformat()}" if before else ""
        raise NotFound(f"no {words.committed}{scope}{when}")
    groups = {group_of(e) for e in candidates}
    if group is None and len(groups) > 1:
        raise UsageError(
            f"the repository holds {words.entries} of several {words.groups} "
            f"({', '.join(sorted(groups))})",
            hint=f"choose one with {words.option}",
        )
    return max(candidates, key=lambda e: (e.created_at, e.id))
