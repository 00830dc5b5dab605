"""What stores each content of a repository, loose objects and packed blobs alike, read
from the repository's own objects (pack indexes parsed as JSON, nothing of backdrill's
reader): tests count contents and tamper with the bytes of one."""

from __future__ import annotations

import json
from typing import Any

from backdrill.files.snapshot import object_key
from backdrill.repository.layout import (
    FILES_OBJECTS_ROOT,
    FILES_PACKS_ROOT,
    pack_key,
    split_pack_key,
)
from backdrill.repository.zstdio import decompressed
from helpers.cli import Repo
from helpers.repo import delete_object, list_keys, read_object, write_object


def pack_ids(repo: Repo) -> set[str]:
    return {
        s[0] for k in list_keys(repo, FILES_PACKS_ROOT) if (s := split_pack_key(k)) and not s[1]
    }


def pack_index(repo: Repo, pack_id: str) -> dict[str, Any]:
    key = f"{pack_key(pack_id)}.index"
    doc: dict[str, Any] = json.loads(decompressed(read_object(repo, key), key, limit=1 << 30))
    return doc


def stored_contents(repo: Repo) -> set[str]:
    """Every stored content, named by the key a loose object of it has (a packed blob
    too: so a set of contents compares whatever stores them)."""
    found = {k for k in list_keys(repo, FILES_OBJECTS_ROOT) if "/.partial-" not in k}
    for pack_id in pack_ids(repo):
        found |= {object_key(b["sha256"], b["stored"]) for b in pack_index(repo, pack_id)["blobs"]}
    return found


def content_range(entry: dict[str, Any]) -> tuple[str, int, int]:
    """(key, offset, length) of the stored bytes of a snapshot entry (a JSON dict)."""
    if entry.get("pack"):
        return pack_key(entry["pack"]), entry["offset"], entry["stored_size"]
    return object_key(entry["sha256"], entry["stored"]), 0, entry["stored_size"]


def flip_stored_byte(repo: Repo, entry: dict[str, Any], at: int = -1) -> None:
    """Flip one byte of the stored bytes of ``entry`` (the last one by default)."""
    key, offset, length = content_range(entry)
    data = bytearray(read_object(repo, key))
    data[offset + (at % length)] ^= 0xFF
    write_object(repo, key, bytes(data))


def unpack_entries(repo: Repo, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (:func:`helpers.snapdoc.read_doc`) as a backdrill before packs wrote it:
    every packed content copied out as the loose object it is byte for byte, its entry
    without ``pack`` and ``offset``, and the packs it named deleted (with their indexes)."""
    packs: set[str] = set()
    for entry in doc["entries"]:
        if entry.get("pack"):
            key, offset, length = content_range(entry)
            blob = read_object(repo, key)[offset : offset + length]
            write_object(repo, object_key(entry["sha256"], entry["stored"]), blob)
            packs.add(entry.pop("pack"))
            entry.pop("offset")
    for pack_id in packs:
        delete_object(repo, pack_key(pack_id))
        delete_object(repo, f"{pack_key(pack_id)}.index")
    return doc
