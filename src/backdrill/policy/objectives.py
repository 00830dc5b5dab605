"""RPO and RTO arithmetic: pure functions over times and durations."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from backdrill.runtime.timeutil import MAX_CLOCK_SKEW

PHASES = ("provision", "download", "restore", "verify")


@dataclass(frozen=True)
class Gap:
    seconds: float
    after_id: str | None
    before_id: str | None


@dataclass(frozen=True)
class RpoResult:
    achieved_seconds: float
    target_seconds: float
    met: bool
    worst_gap_seconds: float
    worst_gap_met: bool
    worst_gap_after: str | None
    worst_gap_before: str | None
    window_days: int


@dataclass(frozen=True)
class RtoResult:
    achieved_seconds: float
    target_seconds: float
    met: bool
    phases: dict[str, float]


def worst_gap(backups: Sequence[tuple[str, datetime]], *, now: datetime, window: timedelta) -> Gap:
    """The longest interval between consecutive committed backups whose later end lies
    in the window ``[now - window, now]``; the interval from the newest backup to
    ``now`` counts too (a gap that is still open is a gap)."""
    ordered = sorted(backups, key=lambda b: b[1])
    start = now - window
    best = Gap(0.0, None, None)
    for (prev_id, prev_at), (next_id, next_at) in itertools.pairwise(ordered):
        if next_at < start:
            continue
        seconds = (next_at - max(prev_at, start)).total_seconds()
        if seconds > best.seconds:
            best = Gap(seconds, prev_id, next_id)
    if ordered:
        last_id, last_at = ordered[-1]
        open_gap = (now - max(last_at, start)).total_seconds()
        if open_gap > best.seconds:
            best = Gap(open_gap, last_id, None)
    return best


def evaluate_rpo(
    *,
    drill_start: datetime,
    backup_created_at: datetime,
    target_seconds: float,
    history: Sequence[tuple[str, datetime]],
    window_days: int,
) -> RpoResult:
    achieved = (drill_start - backup_created_at).total_seconds()
    # a backup dated after the drill started: within the clock skew allowance it is
    # fresh (0 s); beyond it the RPO is not met (manifests are refused at parsing)
    believable = achieved >= -MAX_CLOCK_SKEW.total_seconds()
    achieved = max(achieved, 0.0) if believable else achieved
    gap = worst_gap(history, now=drill_start, window=timedelta(days=window_days))
    return RpoResult(
        achieved_seconds=achieved,
        target_seconds=target_seconds,
        met=believable and achieved <= target_seconds,
        worst_gap_seconds=gap.seconds,
        worst_gap_met=gap.seconds <= target_seconds,
        worst_gap_after=gap.after_id,
        worst_gap_before=gap.before_id,
        window_days=window_days,
    )


def evaluate_rto(
    *,
    drill_start: datetime,
    verified_at: datetime,
    target_seconds: float,
    phases: dict[str, float],
) -> RtoResult:
    achieved = (verified_at - drill_start).total_seconds()
    return RtoResult(
        achieved_seconds=achieved,
        target_seconds=target_seconds,
        met=achieved <= target_seconds,
        phases={name: round(phases.get(name, 0.0), 3) for name in PHASES},
    )


def estimate_restore_seconds(previous_seconds: float, previous_size: int, this_size: int) -> float:
    """Scale a previous drill's duration linearly by backup size."""
    if previous_size <= 0:
        return previous_seconds
    return previous_seconds * this_size / previous_size
