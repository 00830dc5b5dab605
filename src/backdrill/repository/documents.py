"""Strict parsing of the JSON documents backdrill stores (manifests, snapshots,
reports): valid JSON, an object, a known ``schema_version``, and the model's fields,
else one IntegrityError naming the document and the problem. Documents are read with
:func:`read_document`, never past their limit (:mod:`backdrill.repository.limits`)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from backdrill.repository.zstdio import bounded_reader, read_all
from backdrill.runtime.errors import IntegrityError
from backdrill.runtime.timeutil import MAX_CLOCK_SKEW, isoformat, utcnow
from backdrill.storage.base import Storage

M = TypeVar("M", bound=BaseModel)


def read_document(storage: Storage, key: str, *, limit: int) -> bytes:
    """The stored bytes of the document ``key``, streamed: at most ``limit`` bytes are
    read; past it, an IntegrityError naming the key. NotFound when it does not exist.
    (A compressed document is then decompressed with the same bound:
    :func:`backdrill.repository.zstdio.decompressed`.)"""
    with storage.open_reader(key) as stream:
        stored = bounded_reader(
            stream, limit=limit, what=f"document {key}", zstd=False, recorded=False
        )
        return read_all(stored)


def parse_versioned(model: type[M], data: bytes, *, kind: str, where: str, version: int) -> M:
    """``model`` from ``data``; IntegrityError ("<kind> <where> …") otherwise."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{kind} {where} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise IntegrityError(f"{kind} {where} is not a JSON object")
    found = doc.get("schema_version")
    if found != version:
        raise IntegrityError(
            f"{kind} {where} has schema_version {found!r}; this backdrill reads {version}",
            hint="upgrade backdrill",
        )
    return validated(model, doc, kind=kind, where=where)


def validated(model: type[M], doc: dict[str, object], *, kind: str, where: str) -> M:
    """``model`` from a parsed JSON object; IntegrityError ("<kind> <where>: <field>:
    <problem>", the first problem) otherwise."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = " -> ".join(str(p) for p in err["loc"])
        raise IntegrityError(f"{kind} {where}: {loc}: {err['msg']}") from None


def check_not_future(
    moment: datetime, *, kind: str, where: str, now: datetime | None = None
) -> None:
    """Part of "valid where it lies": a document's ``created_at`` has a time zone and is
    not later than now plus :data:`MAX_CLOCK_SKEW`; IntegrityError naming it otherwise
    (a time in the future would read as a negative age, a negative RPO)."""
    if moment.tzinfo is None:
        raise IntegrityError(f"{kind} {where}: created_at has no time zone")
    limit = (now or utcnow()) + MAX_CLOCK_SKEW
    if moment > limit:
        raise IntegrityError(
            f"{kind} {where}: created_at {isoformat(moment)} is in the future "
            f"(after {isoformat(limit)}, {MAX_CLOCK_SKEW.total_seconds():.0f} s ahead of now)"
        )
