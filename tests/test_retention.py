"""The retention policy, a pure function: tables, scenarios and properties (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backdrill.policy.retention import Decision, Item, Policy, decide

NOW = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)


def daily(count: int, *, newest_age_days: float = 0, at: datetime = NOW) -> list[Item]:
    newest = at - timedelta(days=newest_age_days, hours=2)
    return [Item(f"b{i:03d}", newest - timedelta(days=i)) for i in range(count)]


def kept(decisions: list[Decision]) -> set[str]:
    return {d.id for d in decisions if d.keep}


def test_forty_daily_backups_without_gap_keep_exactly_the_thirty_day_window() -> None:
    decisions = decide(daily(40), Policy(days=30, min_keep=7), NOW)
    assert kept(decisions) == {f"b{i:03d}" for i in range(30)}
    assert all(d.rule == "window" for d in decisions if d.keep)
    assert all(d.rule == "expired" for d in decisions if not d.keep)


def test_forty_daily_backups_then_ten_days_without_keep_at_least_min_keep() -> None:
    decisions = decide(daily(40, newest_age_days=10), Policy(days=30, min_keep=7), NOW)
    # 20 remain inside the window (ages 10..29 days); min_keep is covered by them
    assert len(kept(decisions)) == 20
    assert len(kept(decisions)) >= 7


def test_prune_keeps_min_keep_newest_even_when_older_than_window() -> None:
    decisions = decide(daily(10, newest_age_days=60), Policy(days=30, min_keep=7), NOW)
    assert kept(decisions) == {f"b{i:03d}" for i in range(7)}
    assert {d.rule for d in decisions if d.keep} == {"min_keep"}


def test_unreadable_input_deletes_nothing_and_says_refused() -> None:
    decisions = decide(daily(50, newest_age_days=100), Policy(), NOW, unreadable=True)
    assert all(d.keep and d.rule == "refused" for d in decisions)


def test_future_created_at_counts_as_inside_the_window() -> None:
    items = [Item("future", NOW + timedelta(days=3)), *daily(12, newest_age_days=40)]
    decisions = decide(items, Policy(days=30, min_keep=1), NOW)
    assert kept(decisions) == {"future"}


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        # the window (1 day) keeps d0a and d0b; its day counts as a period already seen
        (Policy(days=1, min_keep=1, keep_daily=3), {"d0a", "d0b", "d1", "d2", "d3"}),
        # weekly: the newest backup of each older ISO week (d3 is Sunday of week 47)
        (Policy(days=1, min_keep=1, keep_weekly=2), {"d0a", "d0b", "d3", "d14"}),
        # monthly with more periods asked than exist: the oldest stands in
        (Policy(days=1, min_keep=1, keep_monthly=5), {"d0a", "d0b", "d40", "d90", "d91"}),
    ],
)
def test_gfs_keeps_the_newest_backup_per_period_like_borg(
    policy: Policy, expected: set[str]
) -> None:
    base = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday
    now = base + timedelta(hours=1)
    items = [Item("d0a", base), Item("d0b", base - timedelta(hours=3))]
    items += [Item(f"d{n}", base - timedelta(days=n)) for n in (1, 2, 3, 7, 14, 40, 90, 91)]
    decisions = decide(items, policy, now)
    assert kept(decisions) == expected
    rules = {d.id: d.rule for d in decisions}
    assert rules["d0a"] == "window"
    if policy.keep_monthly:
        assert (rules["d40"], rules["d90"], rules["d91"]) == (
            "monthly",
            "monthly",
            "monthly[oldest]",
        )


# -- properties over random histories -------------------------------------------------

history = st.lists(
    st.tuples(
        st.floats(min_value=-2, max_value=400, allow_nan=False),  # age in days (<0: future)
        st.booleans(),  # the run failed: no backup that day
    ),
    max_size=60,
)
policies = st.builds(
    Policy,
    days=st.integers(1, 60),
    min_keep=st.integers(1, 15),
    keep_daily=st.integers(0, 10),
    keep_weekly=st.integers(0, 6),
    keep_monthly=st.integers(0, 4),
)
clocks = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)


def items_from(ages: list[tuple[float, bool]], now: datetime) -> list[Item]:
    return [
        Item(f"id{i:03d}", now - timedelta(days=age))
        for i, (age, failed) in enumerate(ages)
        if not failed
    ]


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(history, policies, clocks)
def test_prune_never_deletes_the_newest_min_keep_nor_inside_the_window(
    ages: list[tuple[float, bool]], policy: Policy, now: datetime
) -> None:
    items = items_from(ages, now)
    decisions = decide(items, policy, now)
    assert {d.id for d in decisions} == {i.id for i in items}
    newest = sorted(items, key=lambda i: (i.created_at, i.id), reverse=True)[: policy.min_keep]
    deleted = {d.id for d in decisions if not d.keep}
    assert not deleted & {i.id for i in newest}
    horizon = now - timedelta(days=policy.days)
    assert not deleted & {i.id for i in items if i.created_at >= horizon}
    assert len(items) - len(deleted) >= min(policy.min_keep, len(items))


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(history, policies, clocks)
def test_prune_never_deletes_when_a_manifest_is_unreadable(
    ages: list[tuple[float, bool]], policy: Policy, now: datetime
) -> None:
    decisions = decide(items_from(ages, now), policy, now, unreadable=True)
    assert all(d.keep for d in decisions)


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(history, policies, clocks, st.floats(min_value=0, max_value=3, allow_nan=False))
def test_prune_is_idempotent_and_a_later_clock_only_deletes_more(
    ages: list[tuple[float, bool]], policy: Policy, now: datetime, later_days: float
) -> None:
    items = items_from(ages, now)
    first = decide(items, policy, now)
    survivors = [i for i in items if i.id in kept(first)]
    second = decide(survivors, policy, now)
    assert all(d.keep for d in second), "a second run at the same time deletes nothing"
    # and it keeps at least min_keep even after time passes with no new backup
    later = decide(survivors, policy, now + timedelta(days=later_days))
    assert len(kept(later)) >= min(policy.min_keep, len(survivors))
