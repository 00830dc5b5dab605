"""Read-only questions about a database: its user tables and their exact row counts."""

from __future__ import annotations

import psycopg
from psycopg import sql

from backdrill.pg.connection import as_text
from backdrill.repository.digests import TableKey
from backdrill.repository.manifest import TableRows

# The relations (``c``, schema ``n``) whose content a dump holds: not temporary, not in
# a system schema, not members of an extension.
USER_RELATIONS = """
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ({kinds}) AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                    AND d.deptype = 'e')
ORDER BY 1, 2
"""

# User tables whose data pg_dump writes: ordinary and unlogged tables (leaf partitions
# included).
USER_TABLES_SQL = "SELECT n.nspname, c.relname" + USER_RELATIONS.format(kinds="'r'")


def count_rows(
    conn: psycopg.Connection[tuple[object, ...]], skip: frozenset[TableKey] = frozenset()
) -> list[TableRows]:
    """Exact row counts of every user table but ``skip`` (not dumped), in the
    connection's current snapshot."""
    rows = conn.execute(USER_TABLES_SQL).fetchall()
    tables = [(as_text(s), as_text(t)) for s, t in rows]
    counts: list[TableRows] = []
    for schema, table in tables:
        if (schema, table) in skip:
            continue
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        row = conn.execute(query).fetchone()
        assert row is not None
        counts.append(TableRows.model_validate({"schema": schema, "table": table, "rows": row[0]}))
    return counts


def row_count_map(conn: psycopg.Connection[tuple[object, ...]]) -> dict[TableKey, int]:
    return {t.key: t.rows for t in count_rows(conn)}


_USER_NAMESPACE = """n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"""


def _not_from_extension(catalog: str, alias: str) -> str:
    return (
        f"NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass "
        f"AND d.objid = {alias}.oid AND d.deptype = 'e')"
    )


# What a user may have made in a database, each kind counted: anything here means the
# database holds something that a restore must never drop.
USER_OBJECTS_SQL: dict[str, str] = {
    "relations": f"""SELECT count(*) FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {_USER_NAMESPACE}
          AND {_not_from_extension("pg_class", "c")}""",
    "large objects": "SELECT count(*) FROM pg_largeobject_metadata",
    "functions": f"""SELECT count(*) FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE {_USER_NAMESPACE} AND {_not_from_extension("pg_proc", "p")}""",
    "schemas": f"""SELECT count(*) FROM pg_namespace n
        WHERE n.nspname <> 'public' AND {_USER_NAMESPACE}
          AND n.nspname NOT LIKE 'pg\\_%' AND {_not_from_extension("pg_namespace", "n")}""",
    "types": f"""SELECT count(*) FROM pg_type t
        JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE t.typtype IN ('b', 'c', 'd', 'e', 'r', 'm') AND {_USER_NAMESPACE}
          AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c
                                  WHERE c.oid = t.typrelid) = 'c')
          AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid)
          AND {_not_from_extension("pg_type", "t")}""",
    "extensions": "SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql'",
}


def user_objects(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, int]:
    """How many objects of each kind a user made in the connected database (kinds with
    none left out): empty means nothing would be lost by replacing it."""
    found: dict[str, int] = {}
    for kind, query in USER_OBJECTS_SQL.items():
        row = conn.execute(query).fetchone()
        count = int(str(row[0])) if row else 0
        if count:
            found[kind] = count
    return found
