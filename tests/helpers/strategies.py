"""Hypothesis strategies shared by the hostile-input tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: the keys of a configuration, at any depth: what arbitrary documents are made of
CONFIG_KEYS = [
    "ssot",
    "postgres",
    "storage",
    "url",
    "host",
    "port",
    "user",
    "password",
    "password_file",
    "sslmode",
    "databases",
    "bin_dir",
    "endpoint_url",
    "region",
    "retry",
    "attempts",
    "max_seconds",
    "encryption",
    "recipients",
    "identity_file",
    "sse",
    "mode",
    "kms_key_id",
    "object_lock",
    "days",
    "retention",
    "min_keep",
    "targets",
    "rpo_hours",
    "drill",
    "sandbox",
    "jobs",
    "backup",
    "notify",
    "webhook_url",
    "files",
    "source",
    "part_size_mb",
    "all",
    "keep_daily",
    "grace_hours",
    "rto_hours",
    "compression_level",
    "name",
    "serve",
    "cache_seconds",
]


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
