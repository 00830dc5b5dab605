"""The retention policy: a pure function over plain data (borg's ``prune``).

For each backup of one scope (a database, a filestore source, the globals) it decides
keep or delete and names the rule that decided. Rules, in order:

1. ``refused``: the scope holds an unreadable manifest, so nothing is deleted at all;
2. ``window``: ``created_at`` is within ``days`` of ``now`` (or in the future);
3. ``min_keep``: one of the newest ``min_keep`` backups, whatever its age;
4. ``daily`` / ``weekly`` / ``monthly``: the newest backup of each of the last N
   periods that hold one (borg semantics, UTC periods, ISO weeks), the oldest backup
   standing in when fewer periods exist (``daily[oldest]``);
5. otherwise ``expired``: delete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

from backdrill.config.model import RetentionConfig


@dataclass(frozen=True)
class Item:
    """One committed backup of a scope, as retention sees it."""

    id: str
    created_at: datetime


@dataclass(frozen=True)
class Policy:
    days: int = 30
    min_keep: int = 7
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0

    @classmethod
    def from_config(cls, config: RetentionConfig) -> Policy:
        """The config's knobs of the same names (the config adds ``grace_hours``)."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Decision:
    id: str
    created_at: datetime
    keep: bool
    rule: str


_PERIODS: dict[str, Callable[[datetime], str]] = {
    "daily": lambda t: t.astimezone(UTC).strftime("%Y-%m-%d"),
    "weekly": lambda t: t.astimezone(UTC).strftime("%G-%V"),
    "monthly": lambda t: t.astimezone(UTC).strftime("%Y-%m"),
}


def _newest_first(items: Iterable[Item]) -> list[Item]:
    return sorted(items, key=lambda i: (i.created_at, i.id), reverse=True)


def _keep_per_period(items: Sequence[Item], rule: str, count: int, kept: dict[str, str]) -> None:
    """borg's ``prune_split``: the newest backup of each period, ``count`` periods."""
    if count <= 0 or not items:
        return
    period_of = _PERIODS[rule]
    last: str | None = None
    added = 0
    for item in items:
        period = period_of(item.created_at)
        if period == last:
            continue
        last = period
        if item.id not in kept:
            kept[item.id] = rule
            added += 1
            if added == count:
                return
    oldest = items[-1]
    if added < count and oldest.id not in kept:
        kept[oldest.id] = f"{rule}[oldest]"


def decide(
    items: Iterable[Item], policy: Policy, now: datetime, *, unreadable: bool = False
) -> list[Decision]:
    """Keep or delete each item, newest first; never deletes when ``unreadable``."""
    ordered = _newest_first(items)
    if unreadable:
        return [Decision(i.id, i.created_at, True, "refused") for i in ordered]
    horizon = now - timedelta(days=policy.days)
    kept: dict[str, str] = {}
    for item in ordered:
        if item.created_at >= horizon:
            kept[item.id] = "window"
    for item in ordered[: policy.min_keep]:
        kept.setdefault(item.id, "min_keep")
    _keep_per_period(ordered, "daily", policy.keep_daily, kept)
    _keep_per_period(ordered, "weekly", policy.keep_weekly, kept)
    _keep_per_period(ordered, "monthly", policy.keep_monthly, kept)
    return [Decision(i.id, i.created_at, i.id in kept, kept.get(i.id, "expired")) for i in ordered]
