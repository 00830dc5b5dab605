"""Pure choice of one committed entry (a database backup, a files snapshot) by
``latest``, by id, and ``--before``: the same rules for both kinds, in their own words."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from backdrill.runtime.errors import NotFound, UsageError


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
    making: str = ""  # "`backdrill backup db`": what makes one, when there is none


MAX_CANDIDATES = 10  # an ambiguous prefix names at most this many ids


def resolve_id(ids: Iterable[str], spec: str, *, what: str = "backup") -> str | None:
    """Pure: the id ``spec`` names: the id equal to it, else the only id it is a prefix
    of; None when it names none. A prefix of several ids is a usage error naming them."""
    known = sorted(set(ids))
    if spec in known:
        return spec
    if not spec:
        return None
    matches = [i for i in known if i.startswith(spec)]
    if len(matches) > 1:
        shown = ", ".join(matches[:MAX_CANDIDATES])
        more = f" and {len(matches) - MAX_CANDIDATES} more" if len(matches) > MAX_CANDIDATES else ""
        raise UsageError(
            f"id prefix {spec!r} is ambiguous: {len(matches)} {what} ids start with it "
            f"({shown}{more})",
            hint="give more characters of the id",
        )
    return matches[0] if matches else None


def select(
    entries: Iterable[E],
    spec: str,
    *,
    group_of: Callable[[E], str],
    group: str | None,
    before: datetime | None,
    words: Words,
) -> E:
    """The entry named by ``spec`` (an id, a unique id prefix, or ``latest``); ``latest``:
    the newest of ``group`` (of the only group there is, when None) created strictly
    before ``before``."""
    candidates = [e for e in entries if group is None or group_of(e) == group]
    if spec != "latest":
        chosen = resolve_id([e.id for e in candidates], spec, what=words.entry)
        found = next((e for e in candidates if e.id == chosen), None)
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
        making = f"make one with {words.making}" if words.making and not when else None
        raise NotFound(f"no {words.committed}{scope}{when}", hint=making)
    groups = {group_of(e) for e in candidates}
    if group is None and len(groups) > 1:
        raise UsageError(
            f"the repository holds {words.entries} of several {words.groups} "
            f"({', '.join(sorted(groups))})",
            hint=f"choose one with {words.option}",
        )
    return max(candidates, key=lambda e: (e.created_at, e.id))
