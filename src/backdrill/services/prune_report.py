"""What a prune did (or would do, ``--dry-run``): kept and deleted entries per scope,
orphans, locked objects, skipped scopes; rendered as a table or JSON by the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from backdrill.runtime.timeutil import isoformat


@dataclass(frozen=True)
class EntryOutcome:
    scope: str
    id: str
    created_at: datetime
    action: str  # keep | delete | locked
    rule: str
    bytes: int
    detail: str = ""


@dataclass(frozen=True)
class OrphanOutcome:
    key: str
    kind: str  # uncommitted | pending upload | unreferenced object
    action: str  # delete | locked
    bytes: int
    detail: str = ""


@dataclass
class PruneReport:
    dry_run: bool
    now: datetime
    entries: list[EntryOutcome] = field(default_factory=list)
    orphans: list[OrphanOutcome] = field(default_factory=list)
    skipped_scopes: dict[str, str] = field(default_factory=dict)
    young_unreferenced: int = 0

    @property
    def bytes_freed(self) -> int:
        deleted = [e.bytes for e in self.entries if e.action == "delete"]
        deleted += [o.bytes for o in self.orphans if o.action == "delete"]
        return sum(deleted)

    @property
    def locked(self) -> list[str]:
        locked = [f"{e.scope}/{e.id}: {e.detail}" for e in self.entries if e.action == "locked"]
        return locked + [f"{o.key}: {o.detail}" for o in self.orphans if o.action == "locked"]

    def to_dict(self) -> dict[str, Any]:
        def entry(e: EntryOutcome) -> dict[str, Any]:
            doc = asdict(e)
            doc["created_at"] = isoformat(e.created_at)
            return doc

        return {
            "dry_run": self.dry_run,
            "now": isoformat(self.now),
            "kept": [entry(e) for e in self.entries if e.action == "keep"],
            "deleted": [entry(e) for e in self.entries if e.action == "delete"],
            "locked": [entry(e) for e in self.entries if e.action == "locked"],
            "orphans": [asdict(o) for o in self.orphans],
            "skipped_scopes": self.skipped_scopes,
            "young_unreferenced_objects": self.young_unreferenced,
            "bytes_freed": self.bytes_freed,
        }
