"""Read and rewrite a files snapshot as one JSON document, whatever its schema_version:
a schema_version 2 root is expanded with the entries of its chunks, and written back
with its (edited) entries in one new chunk each, sorted by path, as anyone with write
access to the repository could: what the reader checks is then the entries themselves."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from backdrill.repository.layout import chunk_key
from backdrill.repository.zstdio import compressed, decompressed
from helpers.cli import Repo
from helpers.repo import read_object, write_object


def _chunk_entries(repo: Repo, addresses: list[str]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for address in addresses:
        raw = decompressed(read_object(repo, chunk_key(address)), "test", limit=1 << 30)
        entries += json.loads(raw)["entries"]
    return entries


def read_doc(repo: Repo, key: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(decompressed(read_object(repo, key), "test", limit=1 << 30))
    if doc.get("schema_version") in (2, 3):
        doc["entries"] = _chunk_entries(repo, doc.pop("chunks"))
        doc["skipped"] = _chunk_entries(repo, doc.pop("skipped_chunks"))
    return doc


def _put_chunk(repo: Repo, kind: str, entries: list[dict[str, Any]]) -> str:
    data = compressed(json.dumps({"kind": kind, "entries": entries}).encode())
    address = hashlib.sha256(data).hexdigest()
    write_object(repo, chunk_key(address), data)
    return address


def encode_doc(repo: Repo, doc: dict[str, Any]) -> bytes:
    """The stored form of ``doc`` (its chunks written first, for schema_version 2)."""
    doc = dict(doc)
    if doc.get("schema_version") in (2, 3) and "entries" in doc:
        entries = sorted(doc.pop("entries"), key=lambda e: str(e.get("path")))
        doc["chunks"] = [_put_chunk(repo, "files-entries", entries)] if entries else []
        skipped = doc.pop("skipped", [])
        doc["skipped_chunks"] = [_put_chunk(repo, "files-skipped", skipped)] if skipped else []
    return compressed(json.dumps(doc).encode())


def write_doc(repo: Repo, key: str, doc: dict[str, Any]) -> None:
    write_object(repo, key, encode_doc(repo, doc))
