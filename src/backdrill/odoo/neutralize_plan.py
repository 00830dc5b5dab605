"""Odoo neutralization decided from the schema found (pure): the statements to run on
the tables and columns that exist, the values for NOT NULL columns without a default
in the rows it inserts, and what stands in the way of neutralizing at all.

The executor (:func:`backdrill.odoo.facts.neutralize`) reads the schema, asks
:func:`plan_neutralization`, and runs the statements in one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from psycopg import sql

#: the tables the neutralization and its verification touch
TABLES = ("ir_mail_server", "ir_cron", "ir_model_data", "fetchmail_server", "ir_config_parameter")

MARKER_KEY = "database.is_neutralized"
DUMMY_HOST = "invalid"
#: Odoo's own dummy server (``odoo-bin neutralize``), column by column; only the
#: columns the table has are written
DUMMY_SERVER = {
    "name": "neutralization - disable emails",
    "smtp_host": DUMMY_HOST,
    "smtp_port": "1025",
    "smtp_encryption": "none",
    "smtp_authentication": "login",
    "active": "true",
    "sequence": "1",
}
_INTEGERS = frozenset({"smallint", "integer", "bigint"})


@dataclass(frozen=True)
class Column:
    name: str
    #: ``format_type()``: ``integer``, ``character varying``, ``timestamp without time zone``
    type_name: str
    #: ``pg_type.typcategory``: N numeric, S string, B boolean, D date/time, ...
    category: str
    not_null: bool
    #: a default, an identity or a generated column: an INSERT may leave it out
    has_default: bool
    writable: bool = True


@dataclass(frozen=True)
class Table:
    name: str
    columns: Mapping[str, Column]

    def has(self, *names: str) -> bool:
        return all(n in self.columns and self.columns[n].writable for n in names)


#: the tables of :data:`TABLES` that exist in the current schema, by name
Schema = Mapping[str, Table]


@dataclass(frozen=True)
class Statement:
    #: what its row count means: mail_servers_disabled, mail_server_added,
    #: crons_disabled, fetchmail_disabled, marker_updated, marker_inserted
    purpose: str
    query: sql.Composed


@dataclass(frozen=True)
class Plan:
    statements: tuple[Statement, ...]
    #: why the copy cannot be neutralized; the plan must not run when there are any
    problems: tuple[str, ...]
    #: what was left out because it is not there
    notes: tuple[str, ...]


def _filler(table: Table, column: Column) -> sql.Composable | None:
    """A value for a NOT NULL column without a default, or None if there is none."""
    if column.type_name in _INTEGERS:  # unique enough for an id-like column
        return sql.SQL("(SELECT coalesce(max({c}), 0) + 1 FROM {t})").format(
            c=sql.Identifier(column.name), t=sql.Identifier(table.name)
        )
    by_type: dict[str, sql.Composable] = {
        "uuid": sql.SQL("gen_random_uuid()"),
        "json": sql.Literal("{}"),
        "jsonb": sql.Literal("{}"),
        "bytea": sql.Literal(""),
    }
    by_category: dict[str, sql.Composable] = {
        "N": sql.Literal("0"),
        "S": sql.Literal("backdrill neutralization"),
        "B": sql.Literal("false"),
        "D": sql.SQL("now()"),
        "T": sql.Literal("0"),
        "A": sql.Literal("{}"),
    }
    return by_type.get(column.type_name, by_category.get(column.category))


def _insert(
    table: Table, values: Mapping[str, str], *, where: sql.Composable | None
) -> tuple[sql.Composed | None, str | None]:
    """``INSERT INTO table (...) SELECT ...``: the given values of the columns that
    exist, and a filler for every other NOT NULL column without a default."""
    names: list[str] = []
    exprs: list[sql.Composable] = []
    for name, value in values.items():
        if table.has(name):
            names.append(name)
            exprs.append(sql.Literal(value))
    for column in table.columns.values():
        if column.name in names or not column.not_null or column.has_default:
            continue
        filler = _filler(table, column) if column.writable else None
        if filler is None:
            return None, (
                f"{table.name}.{column.name} ({column.type_name}) is NOT NULL without a "
                "default, and backdrill has no value for that type"
            )
        names.append(column.name)
        exprs.append(filler)
    query = sql.SQL("INSERT INTO {t} ({c}) SELECT {v}").format(
        t=sql.Identifier(table.name),
        c=sql.SQL(", ").join(map(sql.Identifier, names)),
        v=sql.SQL(", ").join(exprs),
    )
    if where is not None:
        query = sql.Composed([query, sql.SQL(" WHERE "), where])
    return query, None


def _deactivate(table: Table, extra: sql.Composable | None = None) -> sql.Composed:
    query = sql.SQL("UPDATE {} SET active = false WHERE active").format(sql.Identifier(table.name))
    return sql.Composed([query, extra]) if extra is not None else query


def _mail_servers(schema: Schema) -> tuple[list[Statement], list[str]]:
    table = schema.get("ir_mail_server")
    if table is None:
        return [], [
            "no ir_mail_server table: no dummy mail server can be added, and Odoo would "
            "send e-mail through the server of its configuration file"
        ]
    missing = [c for c in ("active", "smtp_host") if not table.has(c)]
    if missing:
        return [], [f"ir_mail_server has no {' or '.join(missing)} column to neutralize"]
    insert, problem = _insert(table, DUMMY_SERVER, where=None)
    if insert is None:
        return [], [f"no dummy mail server can be added: {problem}"]
    return [
        Statement("mail_servers_disabled", _deactivate(table)),
        Statement("mail_server_added", insert),
    ], []


def _crons(schema: Schema) -> tuple[list[Statement], list[str], list[str]]:
    cron, data = schema.get("ir_cron"), schema.get("ir_model_data")
    if cron is None:
        return [], [], ["no ir_cron table"]
    if not cron.has("active"):
        return [], ["ir_cron has no active column: the crons cannot be deactivated"], []
    if cron.has("id") and data is not None and data.has("module", "name", "res_id"):
        keep = sql.SQL(
            " AND id NOT IN (SELECT res_id FROM ir_model_data WHERE module = 'base' "
            "AND name = 'autovacuum_job' AND res_id IS NOT NULL)"
        )
        return [Statement("crons_disabled", _deactivate(cron, keep))], [], []
    note = "no ir_model_data to find the autovacuum cron: every cron deactivated"
    return [Statement("crons_disabled", _deactivate(cron))], [], [note]


def _marker(schema: Schema) -> tuple[list[Statement], list[str]]:
    table = schema.get("ir_config_parameter")
    if table is None or not table.has("key", "value"):
        what = "no ir_config_parameter table" if table is None else "ir_config_parameter"
        return [], [f"{what} with key and value: {MARKER_KEY} cannot be set"]
    absent = sql.SQL("NOT EXISTS (SELECT 1 FROM ir_config_parameter WHERE key = {k})").format(
        k=sql.Literal(MARKER_KEY)
    )
    insert, problem = _insert(table, {"key": MARKER_KEY, "value": "true"}, where=absent)
    if insert is None:
        return [], [f"{MARKER_KEY} cannot be added: {problem}"]
    update = sql.SQL("UPDATE ir_config_parameter SET value = 'true' WHERE key = {k}").format(
        k=sql.Literal(MARKER_KEY)
    )
    return [Statement("marker_updated", update), Statement("marker_inserted", insert)], []


def plan_neutralization(schema: Schema) -> Plan:
    """Odoo's base neutralization on the schema found: every active mail server off and
    a dummy one (host ``invalid``) added, every cron but the autovacuum off, incoming
    mail servers off, ``database.is_neutralized = true``."""
    statements, problems, notes = [], [], []
    mail, mail_problems = _mail_servers(schema)
    crons, cron_problems, cron_notes = _crons(schema)
    marker, marker_problems = _marker(schema)
    statements += mail + crons
    problems += mail_problems + cron_problems + marker_problems
    notes += cron_notes
    fetchmail = schema.get("fetchmail_server")
    if fetchmail is not None:
        if fetchmail.has("active"):
            statements.append(Statement("fetchmail_disabled", _deactivate(fetchmail)))
        else:
            problems.append("fetchmail_server has no active column: it cannot be deactivated")
    statements += marker
    return Plan(tuple(statements), tuple(problems), tuple(notes))


@dataclass(frozen=True)
class StateQueries:
    """How to read back whether a copy is neutralized, on the schema found; None where
    the schema cannot tell."""

    marker: sql.Composed | None
    live_mail_servers: sql.Composed | None


def state_queries(schema: Schema) -> StateQueries:
    params = schema.get("ir_config_parameter")
    mail = schema.get("ir_mail_server")
    marker = None
    if params is not None and params.has("key", "value"):
        marker = sql.SQL("SELECT value FROM ir_config_parameter WHERE key = {}").format(
            sql.Literal(MARKER_KEY)
        )
    live = None
    if mail is not None and mail.has("active", "smtp_host"):
        live = sql.SQL(
            "SELECT count(*) FROM ir_mail_server WHERE active AND smtp_host IS DISTINCT FROM {}"
        ).format(sql.Literal(DUMMY_HOST))
    return StateQueries(marker, live)
