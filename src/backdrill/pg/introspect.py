"""Read-only questions about a database: its user tables and their exact row counts."""

from __future__ import annotations

import psycopg
from psycopg import sql

from backdrill.digests import TableKey
from backdrill.manifest import TableRows
from backdrill.pg.connection import as_text

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
