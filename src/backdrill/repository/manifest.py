"""The manifest of a database backup: the commit marker, written last (docs/format.md).

Parsed strictly: a manifest that is not valid JSON, lacks a field, or has a schema
version this backdrill does not know is an :class:`IntegrityError` naming the key. It
is also valid only where it lies (:func:`check_where_it_lies`): read from the key its
database and id name, its objects inside its own directory, created in the past.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# the source of the top-level ``postgres:`` (and of every manifest that names none),
# and a source's name in keys and manifests
from backdrill.config.model import SOURCE_NAME_PATTERN as SOURCE_PATTERN
from backdrill.odoo.facts import OdooFacts
from backdrill.pg.binaries import VERSION_PATTERN
from backdrill.pg.database_properties import DatabaseProperties
from backdrill.pg.roles import RoleFacts
from backdrill.repository.digests import ContentFacts, TableKey, TableRef
from backdrill.repository.documents import check_not_future, parse_versioned
from backdrill.repository.layout import DEFAULT_SOURCE, manifest_key
from backdrill.runtime.errors import IntegrityError

SCHEMA_VERSION = 1
DUMP_NAME = "dump.pgdump.zst"
CUSTOM_FORMAT = "pg_dump-custom+zstd"
#: ``backup db --jobs N``: pg_dump's directory format, one stored object per file
DIRECTORY_FORMAT = "pg_dump-directory+zstd"
DIRECTORY_PREFIX = "dump-"
#: a stored object's name: one path segment of the backup's directory (no ``/``, no
#: ``..``, not absolute), e.g. ``dump.pgdump.zst``, ``dump-toc.dat.zst``
OBJECT_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$"


class TableRows(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_name: str = Field(alias="schema")
    table: str
    rows: int

    @property
    def key(self) -> TableKey:
        return (self.schema_name, self.table)


class StoredObject(BaseModel):
    """One stored, zstd-compressed object of a backup."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=OBJECT_NAME_PATTERN)
    raw_size: int
    stored_size: int
    sha256: str


def tree_digest(objects: list[StoredObject]) -> str:
    """The sha256 that stands for a directory backup: over its objects' digests."""
    lines = "".join(f"{o.sha256}  {o.name}\n" for o in sorted(objects, key=lambda o: o.name))
    return hashlib.sha256(lines.encode()).hexdigest()


class DbManifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    schema_version: int
    id: str
    kind: Literal["db"] = "db"
    #: the PostgreSQL source (``sources:``); absent in manifests written before sources
    source: str = Field(default=DEFAULT_SOURCE, pattern=SOURCE_PATTERN)
    database: str
    created_at: datetime
    started_at: datetime
    finished_at: datetime
    object: str = Field(default=DUMP_NAME, pattern=OBJECT_NAME_PATTERN)
    format: str = CUSTOM_FORMAT
    compression: dict[str, str | int]
    raw_size: int
    stored_size: int
    sha256: str
    server_version: str = Field(pattern=VERSION_PATTERN)
    pg_dump_version: str
    backdrill_version: str
    run_id: str
    host: str
    tables: list[TableRows]
    #: Odoo facts in the dump's snapshot, when the database is an Odoo database
    odoo: OdooFacts | None = None
    #: the roles the database references (owners, grantees, policy roles; no password);
    #: None in manifests written before they were recorded
    roles: list[RoleFacts] | None = Field(default=None, max_length=100_000)
    #: the database's own encoding, locale, settings, comment, grants and tablespaces
    database_properties: DatabaseProperties | None = None
    #: per table, large object and sequence, what its content is (digests.py); None:
    #: a backup made without digests, whose restore can only be counted
    content: ContentFacts | None = None
    #: tables whose data the dump does not hold: unlogged tables of a hot standby
    not_dumped: list[TableRef] = []

    #: the objects of a directory-format backup (empty for the single custom-format dump)
    objects: list[StoredObject] = []

    @property
    def is_directory(self) -> bool:
        return self.format == DIRECTORY_FORMAT

    def stored_objects(self) -> list[StoredObject]:
        """Every stored object of the backup, with its sizes and sha256."""
        if self.is_directory:
            return list(self.objects)
        return [
            StoredObject(
                name=self.object,
                raw_size=self.raw_size,
                stored_size=self.stored_size,
                sha256=self.sha256,
            )
        ]

    @property
    def encrypted(self) -> bool:
        """Stored with client-side encryption (crypto.py): the dump, and the sealed
        fields (tables, odoo, roles, database properties) that need the identity to read."""
        return bool(self.model_extra and "encryption" in self.model_extra)

    def row_counts(self) -> dict[TableKey, int]:
        return {t.key: t.rows for t in self.tables}

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)


def check_where_it_lies(manifest: DbManifest, key: str, now: datetime | None = None) -> None:
    """IntegrityError naming ``key`` unless the manifest read from ``key`` is the one of
    ``db/<its database>/<its id>/`` of its source (``layout.source_root``), a directory
    backup's objects carry their prefix, and it was not created in the future (beyond
    the clock skew allowance). Object names are single segments of the directory
    already (:data:`OBJECT_NAME_PATTERN`)."""
    lies_at = manifest_key(manifest.database, manifest.id, manifest.source)
    if key != lies_at:
        raise IntegrityError(
            f"manifest {key} names backup {manifest.id!r} of database {manifest.database!r} "
            f"of source {manifest.source!r}, whose manifest would be {lies_at!r}"
        )
    if manifest.is_directory and not all(
        o.name.startswith(DIRECTORY_PREFIX) for o in manifest.objects
    ):
        raise IntegrityError(f"manifest {key}: an object lacks the prefix {DIRECTORY_PREFIX}")
    check_not_future(manifest.created_at, kind="manifest", where=key, now=now)


def parse_db_manifest(data: bytes, key: str, now: datetime | None = None) -> DbManifest:
    """Parse and validate the manifest read from ``key``; IntegrityError naming ``key``
    and the problem otherwise."""
    manifest = parse_versioned(DbManifest, data, kind="manifest", where=key, version=SCHEMA_VERSION)
    check_where_it_lies(manifest, key, now)
    return manifest
