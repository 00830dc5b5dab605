"""Odoo facts a drill must respect (PRODUCT.md section 6): recognising an Odoo database,
recording what a restore must reproduce, and neutralizing a restored copy the way
``odoo-bin neutralize`` does, so it can send no e-mail and run no cron."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # psycopg is imported by the callers that connect, not by readers
    import psycopg

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


def _has_column(conn: Conn, table: str, column: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = %s AND column_name = %s",
        (table, column),
    ).fetchone()
    return row is not None


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


@dataclass(frozen=True)
class Neutralization:
    mail_servers_disabled: int
    crons_disabled: int
    fetchmail_disabled: int
    #: rows added per table (``schema.table``): a verification compares against the
    #: manifest's counts plus these
    inserted: dict[str, int]

    def describe(self) -> str:
        return (
            f"{self.mail_servers_disabled} mail server(s) and {self.crons_disabled} cron(s) "
            f"deactivated, {self.fetchmail_disabled} incoming mail server(s) deactivated, "
            "dummy mail server added, database.is_neutralized = true"
        )


#: the tables :func:`neutralize` changes (in the current schema): their restored content
#: legitimately differs from the backup's
NEUTRALIZED_TABLES = ("ir_mail_server", "ir_cron", "fetchmail_server", "ir_config_parameter")


def neutralize(conn: Conn) -> Neutralization:
    """Odoo's base neutralization, in one transaction."""
    with conn.transaction():
        mail = conn.execute("UPDATE ir_mail_server SET active = false WHERE active").rowcount
        columns = "name, smtp_host, smtp_port, smtp_encryption, active"
        values = "'neutralization - disable emails', 'invalid', 1025, 'none', true"
        if _has_column(conn, "ir_mail_server", "smtp_authentication"):
            columns += ", smtp_authentication"
            values += ", 'login'"
        if _has_column(conn, "ir_mail_server", "sequence"):
            columns += ", sequence"
            values += ", 1"
        conn.execute(f"INSERT INTO ir_mail_server ({columns}) VALUES ({values})")
        crons = conn.execute(
            "UPDATE ir_cron SET active = false WHERE active AND id NOT IN ("
            "SELECT res_id FROM ir_model_data WHERE module = 'base' "
            "AND name = 'autovacuum_job' AND res_id IS NOT NULL)"
        ).rowcount
        fetchmail = 0
        if _has_tables(conn, "fetchmail_server"):
            fetchmail = conn.execute(
                "UPDATE fetchmail_server SET active = false WHERE active"
            ).rowcount
        existed = conn.execute(
            "SELECT 1 FROM ir_config_parameter WHERE key = 'database.is_neutralized'"
        ).fetchone()
        conn.execute(
            "INSERT INTO ir_config_parameter (key, value) VALUES ('database.is_neutralized', "
            "'true') ON CONFLICT (key) DO UPDATE SET value = 'true'"
        )
        schema_row = conn.execute("SELECT current_schema()").fetchone()
    schema = str(schema_row[0]) if schema_row else "public"
    inserted = {f"{schema}.ir_mail_server": 1, f"{schema}.ir_config_parameter": 0 if existed else 1}
    return Neutralization(mail, crons, fetchmail, inserted)
