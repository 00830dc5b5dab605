"""The manifest of a database backup: the commit marker, written last (docs/format.md).

Parsed strictly: a manifest that is not valid JSON, lacks a field, or has a schema
version this backdrill does not know is an :class:`IntegrityError` naming the key.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backdrill.digests import ContentFacts, TableKey, TableRef
from backdrill.documents import parse_versioned
from backdrill.odoo import OdooFacts
from backdrill.pg.database_properties import DatabaseProperties
from backdrill.pg.roles import RoleFacts

SCHEMA_VERSION = 1
DUMP_NAME = "dump.pgdump.zst"
MANIFEST_NAME = "manifest.json"
CUSTOM_FORMAT = "pg_dump-custom+zstd"
#: ``backup db --jobs N``: pg_dump's directory format, one stored object per file
DIRECTORY_FORMAT = "pg_dump-directory+zstd"
DIRECTORY_PREFIX = "dump-"


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

    name: str
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
    database: str
    created_at: datetime
    started_at: datetime
    finished_at: datetime
    object: str = DUMP_NAME
    format: str = CUSTOM_FORMAT
    compression: dict[str, str | int]
    raw_size: int
    stored_size: int
    sha256: str
    server_version: str
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


def parse_db_manifest(data: bytes, where: str) -> DbManifest:
    """Parse and validate; IntegrityError naming ``where`` and the problem otherwise."""
    return parse_versioned(DbManifest, data, kind="manifest", where=where, version=SCHEMA_VERSION)
