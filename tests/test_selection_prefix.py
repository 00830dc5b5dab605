"""The one rule choosing an id from a prefix (selection.resolve_id), pure."""

from __future__ import annotations

import pytest

from backdrill.repository.selection import resolve_id
from backdrill.runtime.errors import UsageError

IDS = ["20260301T030000Z-aaaaaa", "20260301T030000Z-abcdef", "20260302T030000Z-123456"]


def test_a_whole_id_is_itself_even_when_it_prefixes_another() -> None:
    assert resolve_id(["abc", "abcd"], "abc") == "abc"


def test_a_unique_prefix_names_its_id() -> None:
    assert resolve_id(IDS, "20260302") == IDS[2]
    assert resolve_id(IDS, "20260301T030000Z-ab") == IDS[1]


def test_no_match_and_the_empty_string_name_nothing() -> None:
    assert resolve_id(IDS, "2027") is None
    assert resolve_id(IDS, "") is None


def test_an_ambiguous_prefix_names_every_candidate() -> None:
    with pytest.raises(UsageError) as raised:
        resolve_id(IDS, "20260301", what="backup")
    assert IDS[0] in str(raised.value) and IDS[1] in str(raised.value)
    assert IDS[2] not in str(raised.value)


def test_many_candidates_are_capped() -> None:
    many = [f"x{i:03d}" for i in range(50)]
    with pytest.raises(UsageError) as raised:
        resolve_id(many, "x")
    assert "and 40 more" in str(raised.value)
