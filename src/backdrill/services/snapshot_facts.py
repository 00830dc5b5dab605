"""What ``backup db`` reads in the dump's own snapshot while pg_dump streams: row counts,
content digests (pg/content.py), the Odoo facts, the referenced roles and the
database's properties, so that they describe exactly what the dump holds; and, before
anything is stored, what the login may not read."""

from __future__ import annotations

import threading

import psycopg

from backdrill.odoo.facts import OdooFacts, odoo_facts
from backdrill.pg.connection import ConnParams, first_line
from backdrill.pg.content import Inventory, compute_content, compute_content_in_snapshot
from backdrill.pg.database_properties import DatabaseProperties, read_properties
from backdrill.pg.introspect import count_rows
from backdrill.pg.privileges import denial_message, unreadable_objects
from backdrill.pg.roles import RoleFacts, referenced_roles
from backdrill.repository.digests import ContentFacts
from backdrill.repository.manifest import TableRows
from backdrill.runtime.errors import PostgresError


class SnapshotFacts(threading.Thread):
    """Counts rows, computes the content digests (pg/content.py, through their own
    connections importing the snapshot), reads the Odoo facts, the referenced roles and
    the database's own properties in the snapshot transaction while pg_dump streams, so
    they describe exactly what the dump holds."""

    def __init__(
        self,
        conn: psycopg.Connection[tuple[object, ...]],
        params: ConnParams,
        snapshot: str,
        inv: Inventory,
        digest_jobs: int | None,
    ) -> None:
        super().__init__(name="row-counts", daemon=True)
        self.conn = conn
        self.params = params
        self.snapshot = snapshot
        self.inv = inv
        self.digest_jobs = digest_jobs
        self.tables: list[TableRows] = []
        self.content: ContentFacts | None = None
        self.odoo: OdooFacts | None = None
        self.roles: list[RoleFacts] = []
        self.properties: DatabaseProperties | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            # first: the digests on this connection (digest_jobs 0) set its transaction's
            # session settings (search_path among them)
            self.odoo = odoo_facts(self.conn)
            self.roles = referenced_roles(self.conn)
            self.properties = read_properties(self.conn)
            if self.digest_jobs is None:
                self.tables = count_rows(self.conn, frozenset(self.inv.not_dumped))
            else:
                self.content = (
                    compute_content_in_snapshot(self.conn, self.inv)
                    if self.digest_jobs == 0
                    else compute_content(
                        self.params, self.inv, snapshot=self.snapshot, workers=self.digest_jobs
                    )
                )
                self.tables = [
                    TableRows.model_validate(
                        {"schema": t.schema_name, "table": t.name, "rows": t.rows}
                    )
                    for t in self.content.tables
                ]
        except BaseException as exc:
            self.error = exc

    def outcome(self) -> tuple[list[TableRows], ContentFacts | None, OdooFacts | None]:
        self.join()
        if self.error is not None:
            raise PostgresError(f"counting rows failed: {first_line(self.error)}")
        return self.tables, self.content, self.odoo


def refuse_unreadable(conn: psycopg.Connection[tuple[object, ...]], database: str) -> None:
    """Before anything is stored or pg_dump starts: what the login may not read, named
    with PostgreSQL's reason (pg/privileges.py)."""
    try:
        denied = unreadable_objects(conn)
    except psycopg.Error as exc:
        raise PostgresError(
            f"cannot check what {database} lets the login read: {first_line(exc)}"
        ) from None
    if denied:
        raise PostgresError(denial_message(conn.info.user, database, denied))
