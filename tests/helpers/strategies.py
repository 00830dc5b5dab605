"""Hypothesis strategies shared by the hostile-input tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def nested(
    scalars: st.SearchStrategy[Any],
    keys: st.SearchStrategy[str],
    *,
    lists: int,
    dicts: int,
    leaves: int,
) -> st.SearchStrategy[Any]:
    """``scalars``, and lists (``lists`` items at the most) and dictionaries (``dicts``
    items, keys drawn from ``keys``) of them, nested, ``leaves`` scalars in all at the
    most: any JSON-like document."""
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=lists), st.dictionaries(keys, children, max_size=dicts)
        ),
        max_leaves=leaves,
    )
