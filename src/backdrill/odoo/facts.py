"""Odoo facts a drill must respect: recognising an Odoo database, recording what a
restore must reproduce, and neutralizing a restored copy the way ``odoo-bin neutralize``
does, so it can send no e-mail and run no cron (on the tables and columns it finds:
the statements are decided by :mod:`backdrill.odoo.neutralize_plan`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from backdrill.runtime.errors import GoalNotMet

if TYPE_CHECKING:  # psycopg is imported by the callers that connect, not by readers
    import psycopg

    from backdrill.odoo.neutralize_plan import Schema

    Conn = psycopg.Connection[tuple[object, ...]]


class OdooFacts(BaseModel):
    """Recorded in the manifest at backup time, in the dump's snapshot."""

    model_config = ConfigDict(frozen=True)

    installed_modules: list[str]
    database_uuid: str | None
    users: int


def _has_tables(conn: Conn, *names: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
        "AND c.relname = ANY(%s)",
        (list(names),),
    ).fetchone()
    return row is not None and row[0] == len(names)


def is_odoo(conn: Conn) -> bool:
    return _has_tables(conn, "ir_module_module", "ir_config_parameter", "res_users")


def odoo_facts(conn: Conn) -> OdooFacts | None:
    """Installed modules, ``database.uuid`` and the number of users; None if not Odoo."""
    if not is_odoo(conn):
        return None
    modules = [
        str(r[0])
        for r in conn.execute(
            "SELECT name FROM ir_module_module WHERE state = 'installed' ORDER BY name"
        ).fetchall()
    ]
    uuid_row = conn.execute(
        "SELECT value FROM ir_config_parameter WHERE key = 'database.uuid'"
    ).fetchone()
    users_row = conn.execute("SELECT count(*) FROM res_users").fetchone()
    return OdooFacts(
        installed_modules=modules,
        database_uuid=str(uuid_row[0]) if uuid_row else None,
        users=int(str(users_row[0])) if users_row else 0,
    )


class NeutralizationFailed(GoalNotMet):
    """The copy could not be neutralized (the schema lacks what it needs, or a statement
    failed and the whole neutralization was rolled back)."""


@dataclass(frozen=True)
class Neutralization:
    mail_servers_disabled: int
    crons_disabled: int
    fetchmail_disabled: int
    #: rows added per table (``schema.table``): a verification compares against the
    #: manifest's counts plus these
    inserted: dict[str, int]
    #: what was left out because the schema does not have it
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        text = (
            f"{self.mail_servers_disabled} mail server(s) and {self.crons_disabled} cron(s) "
            f"deactivated, {self.fetchmail_disabled} incoming mail server(s) deactivated, "
            "dummy mail server added, database.is_neutralized = true"
        )
        return f"{text} ({'; '.join(self.notes)})" if self.notes else text


_SCHEMA_SQL = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory,
       a.attnotnull, a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '',
       a.attgenerated = '' AND a.attidentity <> 'a'
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname = ANY(%s)
ORDER BY c.relname, a.attnum
"""


def read_schema(conn: Conn) -> Schema:
    """The neutralization's tables that exist in the current schema, with their columns."""
    from backdrill.odoo.neutralize_plan import TABLES, Column, Table

    columns: dict[str, dict[str, Column]] = {}
    for table, name, type_name, category, not_null, has_default, writable in conn.execute(
        _SCHEMA_SQL, (list(TABLES),)
    ).fetchall():
        columns.setdefault(str(table), {})[str(name)] = Column(
            str(name),
            str(type_name),
            str(category),
            bool(not_null),
            bool(has_default),
            bool(writable),
        )
    return {t: Table(t, cols) for t, cols in columns.items()}


def _reason(exc: Exception) -> str:
    from backdrill.pg.connection import first_line

    return first_line(exc)[:300]


def neutralize(conn: Conn) -> Neutralization:
    """Odoo's base neutralization on the tables and columns that exist, in one
    transaction; :class:`NeutralizationFailed` (nothing changed) if it cannot be done."""
    import psycopg

    from backdrill.odoo.neutralize_plan import plan_neutralization

    try:
        plan = plan_neutralization(read_schema(conn))
        if plan.problems:
            raise NeutralizationFailed("cannot neutralize: " + "; ".join(plan.problems))
        counts: dict[str, int] = {}
        with conn.transaction():
            for statement in plan.statements:
                counts[statement.purpose] = conn.execute(statement.query).rowcount
        schema_row = conn.execute("SELECT current_schema()").fetchone()
    except psycopg.Error as exc:
        raise NeutralizationFailed(
            f"neutralization failed and was rolled back: {_reason(exc)}"
        ) from None
    schema = str(schema_row[0]) if schema_row else "public"
    inserted = {
        f"{schema}.ir_mail_server": counts.get("mail_server_added", 0),
        f"{schema}.ir_config_parameter": counts.get("marker_inserted", 0),
    }
    return Neutralization(
        counts.get("mail_servers_disabled", 0),
        counts.get("crons_disabled", 0),
        counts.get("fetchmail_disabled", 0),
        inserted,
        plan.notes,
    )


@dataclass(frozen=True)
class NeutralState:
    """Read back from a copy: ``database.is_neutralized`` and the active mail servers
    that are not the dummy one; None where the schema has no such thing."""

    marker: str | None
    live_mail_servers: int | None


def neutral_state(conn: Conn) -> NeutralState:
    """:class:`NeutralizationFailed` if the copy cannot be read."""
    import psycopg

    from backdrill.odoo.neutralize_plan import state_queries

    try:
        queries = state_queries(read_schema(conn))
        marker = live = None
        if queries.marker is not None:
            row = conn.execute(queries.marker).fetchone()
            marker = str(row[0]) if row is not None else None
        if queries.live_mail_servers is not None:
            row = conn.execute(queries.live_mail_servers).fetchone()
            live = int(str(row[0])) if row is not None else None
    except psycopg.Error as exc:
        raise NeutralizationFailed(f"cannot read the neutralization back: {_reason(exc)}") from None
    return NeutralState(marker, live)
