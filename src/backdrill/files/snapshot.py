"""The manifest of a filestore snapshot: the commit marker, written last (docs/format.md).

``files/<source_name>/snapshots/<id>.json.zst``: in schema_version 2 a small root (totals
and the addresses of its entry chunks, ``files/chunks/xx/<sha256>``: :mod:`backdrill.files.chunks`);
in schema_version 1 (still read) one document listing every file. Either way each entry
names its content by address; the contents live once each under ``files/objects/``, or
(schema_version 3, small contents) inside a pack under ``files/packs/``. Parsed strictly,
like :mod:`backdrill.repository.manifest`: anything malformed is an :class:`IntegrityError`, and so
is a snapshot that is not valid where it lies (:func:`check_where_it_lies`).

Snapshots stay in clear, even in an encrypted repository: incremental planning, prune
and ``verify`` read paths, sizes and sha256 without the identity. Only the contents are
encrypted (stored form ``age-zstd``, under their own ``.age`` keys).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from backdrill.repository.documents import check_not_future, parse_versioned, read_document
from backdrill.repository.layout import file_object_key, snapshot_key
from backdrill.repository.limits import MAX_SNAPSHOT_BYTES
from backdrill.repository.zstdio import compressed, decompressed
from backdrill.runtime.errors import IntegrityError
from backdrill.storage.base import Storage

#: written: a root document and its entry chunks (:mod:`backdrill.files.chunks`), whose
#: entries may name packs (``pack``, ``offset``: :mod:`backdrill.files.packs`)
SCHEMA_VERSION = 3
#: still read, restored, verified and pruned: chunks whose entries name loose objects
CHUNKED_VERSION = 2
#: still read, restored, verified and pruned: one document with every entry
LEGACY_VERSION = 1
READABLE_VERSIONS = (LEGACY_VERSION, CHUNKED_VERSION, SCHEMA_VERSION)
#: the versions whose root lists chunks (the same root, 3 says entries may name packs)
CHUNKED_VERSIONS = (CHUNKED_VERSION, SCHEMA_VERSION)

#: ``age-zstd``: zstd-compressed, then age-encrypted (:mod:`backdrill.repository.crypto` frames)
StoredForm = Literal["zstd", "raw", "age-zstd"]
EntryType = Literal["file", "symlink"]
EntryStatus = Literal["ok", "changed"]
ENCRYPTED_FORM: StoredForm = "age-zstd"
#: a content address: the only thing an object key is made of (``files/objects/xx/<it>``)
SHA256_PATTERN = r"^[0-9a-f]{64}$"


def is_encrypted(form: StoredForm | None) -> bool:
    return form == ENCRYPTED_FORM


def object_key(sha256: str, form: StoredForm | None) -> str:
    """THE mapping of a content and its stored form to its key: encrypted objects live
    under their own ``.age`` keys, never mixed with plaintext ones (``zstd``, ``raw``,
    or None: forms told apart by size alone)."""
    return file_object_key(sha256, encrypted=is_encrypted(form))


def stored_form(raw_size: int, stored_size: int, *, encrypted: bool = False) -> StoredForm:
    """An encrypted object is always ``age-zstd``. A plaintext one is stored compressed
    only when that made it strictly smaller, so its size in the repository tells its form."""
    if encrypted:
        return ENCRYPTED_FORM
    return "zstd" if stored_size < raw_size else "raw"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FileEntry(_Strict):
    """One file or symlink of the source, by path relative to the source root."""

    path: str
    type: EntryType = "file"
    size: int
    mtime_ns: int
    mode: int
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    stored: StoredForm | None = None
    stored_size: int | None = None
    etag: str | None = None
    target: str | None = None
    #: ``changed``: the file kept changing while it was read (twice); the content stored
    #: is what the last read saw
    status: EntryStatus = "ok"
    #: the owner at backup time (directory sources; absent in older snapshots): a
    #: restore running as root gives it back, by name, else by number
    uid: int | None = None
    gid: int | None = None
    owner: str | None = None
    group: str | None = None
    #: schema_version 3: the pack holding the content (a small one), at ``offset``,
    #: ``stored_size`` bytes long; None: the content is a loose object
    pack: str | None = Field(default=None, pattern=SHA256_PATTERN)
    offset: int | None = Field(default=None, ge=0)


class SkippedEntry(_Strict):
    path: str
    reason: str


Address = Annotated[str, Field(pattern=SHA256_PATTERN)]


class Snapshot(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    schema_version: int
    id: str
    kind: Literal["files"] = "files"
    source: str
    source_name: str
    created_at: datetime
    finished_at: datetime
    file_count: int
    total_bytes: int
    new_objects: int
    new_bytes: int
    uploaded_bytes: int
    #: chunks of entries this snapshot wrote (schema_version 2; the others it shares)
    new_chunks: int = 0
    files_read: int
    bytes_read: int
    changed_count: int
    skipped_count: int
    run_id: str
    host: str
    backdrill_version: str
    #: schema_version 1 only: every entry, inline
    entries: list[FileEntry] = []
    skipped: list[SkippedEntry] = []
    #: schema_version 2 only: the addresses of the entry chunks, in path order
    chunks: list[Address] | None = None
    #: schema_version 2 only: the addresses of the chunks of skipped entries
    skipped_chunks: list[Address] | None = None

    @model_validator(mode="after")
    def _one_layout(self) -> Snapshot:
        if self.schema_version in CHUNKED_VERSIONS:
            if self.chunks is None or self.skipped_chunks is None:
                raise ValueError("a schema_version 2 or 3 snapshot lists its chunks")
            if self.entries or self.skipped:
                raise ValueError("a schema_version 2 or 3 snapshot has no inline entries")
        elif self.chunks is not None or self.skipped_chunks is not None:
            raise ValueError("only a schema_version 2 or 3 snapshot lists chunks")
        return self

    @property
    def chunked(self) -> bool:
        return self.chunks is not None

    def key(self) -> str:
        return snapshot_key(self.source_name, self.id)

    def summary(self) -> dict[str, object]:
        """Every field but the entries and chunks (``list files --json``)."""
        return json.loads(  # type: ignore[no-any-return]
            self.model_dump_json(exclude={"entries", "skipped", "chunks", "skipped_chunks"})
        )

    def to_json(self) -> str:
        return self.model_dump_json(indent=1)

    def encode(self) -> bytes:
        exclude = {"entries", "skipped"} if self.chunked else {"chunks", "skipped_chunks"}
        return compressed(self.model_dump_json(exclude=exclude).encode())


def check_location(
    key: str,
    *,
    snapshot_id: str,
    source_name: str,
    created_at: datetime | None,
    now: datetime | None = None,
) -> None:
    """IntegrityError naming ``key`` unless a snapshot of this id and source lies at
    ``key`` and was not created in the future (beyond the clock skew allowance)."""
    lies_at = snapshot_key(source_name, snapshot_id)
    if key != lies_at:
        raise IntegrityError(
            f"snapshot {key} names snapshot {snapshot_id!r} of source {source_name!r}, "
            f"which would be {lies_at!r}"
        )
    if created_at is not None:
        check_not_future(created_at, kind="snapshot", where=key, now=now)


def check_where_it_lies(snapshot: Snapshot, key: str, now: datetime | None = None) -> None:
    """The snapshot read from ``key`` is the one its id and source name say, created in
    the past, and every file entry has a content address (object keys are
    ``files/objects/xx/<sha256>``: :data:`SHA256_PATTERN` checked each at parsing)."""
    check_location(
        key,
        snapshot_id=snapshot.id,
        source_name=snapshot.source_name,
        created_at=snapshot.created_at,
        now=now,
    )
    if any(e.type == "file" and e.sha256 is None for e in snapshot.entries):
        raise IntegrityError(f"snapshot {key}: a file entry lacks sha256")


def parse_snapshot(data: bytes, key: str, now: datetime | None = None) -> Snapshot:
    """Decompress, parse and validate the snapshot read from ``key``; IntegrityError
    naming ``key`` otherwise."""
    raw = decompressed(data, f"snapshot {key}", limit=MAX_SNAPSHOT_BYTES)
    snapshot: Snapshot | None
    try:  # the fast path: pydantic parses the JSON itself
        snapshot = Snapshot.model_validate_json(raw)
    except ValidationError:
        snapshot = None
    if snapshot is None or snapshot.schema_version not in READABLE_VERSIONS:
        # the slow path says precisely what is wrong
        snapshot = parse_versioned(
            Snapshot, raw, kind="snapshot", where=key, version=_stated_version(raw)
        )
    check_where_it_lies(snapshot, key, now)
    return snapshot


def _stated_version(raw: bytes) -> int:
    """The readable version a document states (to check it against), else the current one."""
    try:
        stated = json.loads(raw).get("schema_version")
    except (ValueError, AttributeError):
        return SCHEMA_VERSION
    return stated if stated in READABLE_VERSIONS else SCHEMA_VERSION


def load_snapshot(storage: Storage, key: str) -> Snapshot:
    """The snapshot stored under ``key``: read and decompressed within
    :data:`~backdrill.repository.limits.MAX_SNAPSHOT_BYTES` each, then parsed and checked
    where it lies."""
    return parse_snapshot(read_document(storage, key, limit=MAX_SNAPSHOT_BYTES), key)
