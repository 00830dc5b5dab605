"""The streaming pieces under the filestore commands: the on-disk key set and the
ordered, bounded thread pipeline."""

from __future__ import annotations

import threading
import time

import pytest

from backdrill.files.addrset import KeySet
from backdrill.files.pool import Done, grouped, ordered_map


def test_a_key_set_keeps_the_first_size_and_lists_in_key_order() -> None:
    with KeySet() as keys:
        keys.add_many((f"k{i:05d}", i) for i in reversed(range(25_000)))
        keys.add("k00007", 999)  # already there: the first size stays
        keys.add_noted([("a", 1, "note")])
        assert keys.count == 25_001
        assert keys.get("k00007") == 7 and keys.get("missing") is None
        assert "a" in keys and "b" not in keys and 3 not in keys
        listed = list(keys.items())
        assert [k for k, _s, _n in listed] == sorted(k for k, _s, _n in listed)
        assert listed[0] == ("a", 1, "note")
        path = keys._path
    import os

    assert not os.path.exists(path), "the temporary file outlives the set"


def test_ordered_map_keeps_the_input_order_and_holds_at_most_its_window() -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def slow(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.001 * (n % 3))
        with lock:
            running -= 1
        return n * 10

    pulled = 0

    def items() -> object:
        nonlocal pulled
        for n in range(200):
            pulled += 1
            yield Done(-n) if n % 4 == 0 else n

    results = []
    for value in ordered_map(slow, items(), workers=3, window=8, name="t"):  # type: ignore[arg-type]
        results.append(value)
        assert pulled - len(results) <= 8, "more than the window held"
    assert results == [-n if n % 4 == 0 else n * 10 for n in range(200)]
    assert most <= 3


def test_ordered_map_raises_the_first_error_in_its_place() -> None:
    def fail_at_5(n: int) -> int:
        if n == 5:
            raise ValueError("five")
        return n

    seen = []
    with pytest.raises(ValueError, match="five"):
        for value in ordered_map(fail_at_5, range(50), workers=2, window=4, name="t"):
            seen.append(value)
    assert seen == [0, 1, 2, 3, 4]


def test_a_key_set_looks_up_many_keys_at_once_past_one_query_batch() -> None:
    with KeySet() as keys:
        keys.add_many((f"{i:064x}", i) for i in range(1200))
        wanted = [f"{i:064x}" for i in range(0, 2400, 2)] + ["0" * 64, "missing"]
        found = keys.get_many(wanted)
    assert found == {f"{i:064x}": i for i in range(0, 1200, 2)}


def test_grouped_keeps_the_order_in_runs_of_tasks_and_of_known_results() -> None:
    items: list[int | Done[str]] = [1, 2, 3, Done("a"), Done("b"), 4, Done("c"), 5, 6]
    assert list(grouped(items, 2)) == [
        [1, 2],
        [3],
        Done(["a", "b"]),
        [4],
        Done(["c"]),
        [5, 6],
    ]
    assert list(grouped([], 16)) == []
