"""What a drill needs of the filestore: restore a snapshot (the same code as ``restore
files``), pick the snapshot that goes with a database backup, and check that every
``ir_attachment`` with a ``store_fname`` has its file, with the right sha1.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from backdrill.files.catalog import SnapshotChoice, select_snapshot_after
from backdrill.files.restore import RestoreSummary
from backdrill.files.restore_dir import restore_snapshot
from backdrill.repository.streams import CHUNK

__all__ = [
    "AttachmentCheck",
    "AttachmentRef",
    "RestoreSummary",
    "SnapshotChoice",
    "check_attachments",
    "restore_snapshot",
    "select_snapshot_after",
]

MAX_LISTED = 20
MAX_CACHED_HASHES = 10_000
ATTACHMENTS_SQL = """
SELECT id, name, store_fname, checksum FROM ir_attachment
WHERE store_fname IS NOT NULL AND store_fname <> ''
ORDER BY id
"""


@dataclass(frozen=True)
class AttachmentRef:
    id: int
    name: str
    store_fname: str


@dataclass
class AttachmentCheck:
    checked: int = 0
    missing: int = 0
    mismatched: int = 0
    #: the first 20 of each, by id
    missing_examples: list[AttachmentRef] = field(default_factory=list)
    mismatched_examples: list[AttachmentRef] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.mismatched == 0

    def detail(self) -> str:
        text = (
            f"{self.checked} attachments checked, {self.missing} missing, "
            f"{self.mismatched} with a wrong sha1"
        )
        for label, refs in (
            ("missing", self.missing_examples),
            ("wrong sha1", self.mismatched_examples),
        ):
            if refs:
                names = ", ".join(f"#{r.id} {r.name} ({r.store_fname})" for r in refs)
                text += f"; {label}: {names}"
        return text


def _sha1_of(path: Path) -> str | None:
    """The sha1 of a regular file inside the filestore; None when there is none."""
    try:
        with path.open("rb") as stream:
            digest = hashlib.sha1()  # noqa: S324 - Odoo's content address
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        return None
    return digest.hexdigest()


def check_attachments(conn: psycopg.Connection[Any], filestore_dir: Path) -> AttachmentCheck:
    """Every ``ir_attachment`` row with a ``store_fname``: its file exists under
    ``filestore_dir`` and its sha1 equals ``checksum`` (when the row has one)."""
    root = filestore_dir.resolve()
    result = AttachmentCheck()
    # rows sharing a file (Odoo stores a content once) hash it once while it is recent:
    # a bounded cache, not one entry per attachment (millions)
    hashes: OrderedDict[str, str | None] = OrderedDict()
    with conn.cursor() as cur:
        for row in cur.stream(ATTACHMENTS_SQL):
            att_id, name, store_fname, checksum = row[0], row[1], row[2], row[3]
            ref = AttachmentRef(int(att_id), str(name), str(store_fname))
            result.checked += 1
            if store_fname in hashes:
                hashes.move_to_end(store_fname)
            else:
                path = (root / store_fname).resolve()
                inside = path.is_relative_to(root) and path != root
                hashes[store_fname] = _sha1_of(path) if inside else None
                if len(hashes) > MAX_CACHED_HASHES:
                    hashes.popitem(last=False)
            actual = hashes[store_fname]
            if actual is None:
                result.missing += 1
                if len(result.missing_examples) < MAX_LISTED:
                    result.missing_examples.append(ref)
            elif checksum and actual != str(checksum).strip().lower():
                result.mismatched += 1
                if len(result.mismatched_examples) < MAX_LISTED:
                    result.mismatched_examples.append(ref)
    return result
