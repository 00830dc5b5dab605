"""What the login may not read of what pg_dump reads, asked before any dump starts.

A login that is not a superuser (managed PostgreSQL: DigitalOcean's ``doadmin``,
Supabase's ``postgres``) backs up what it may read. pg_dump (and the content digests,
through connections importing the snapshot) fail on the first relation it may not
read, and the digests' failure hides PostgreSQL's reason behind "could not import the
requested snapshot". This pre-flight, in the snapshot transaction, names every schema,
table, sequence and large object the login lacks the privilege for, with PostgreSQL's
own words ("permission denied")."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from backdrill.pg.connection import as_text

#: at most this many objects are named in the one-line error; the rest are counted
NAMED_LIMIT = 5

# the schemas, tables (pg_dump locks and reads them, partitioned ones included),
# sequences and large objects of the database that pg_dump reads, minus what belongs
# to an extension; large objects: when lo_compat_privileges is off, readable by their
# owner's members and by grantees of SELECT (PUBLIC is grantee 0)
UNREADABLE_SQL = r"""
WITH user_schemas AS (
  SELECT n.oid, n.nspname FROM pg_namespace n
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                    AND d.objid = n.oid AND d.deptype = 'e')
)
SELECT kind, name FROM (
  SELECT 1 AS rank, 'schema' AS kind, s.nspname::text AS name
  FROM user_schemas s WHERE NOT has_schema_privilege(s.oid, 'USAGE')
  UNION ALL
  SELECT 2, CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END,
         quote_ident(s.nspname) || '.' || quote_ident(c.relname)
  FROM pg_class c JOIN user_schemas s ON s.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'S') AND c.relpersistence <> 't'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                    AND d.objid = c.oid AND d.deptype = 'e')
    AND NOT has_table_privilege(c.oid, 'SELECT')
  UNION ALL
  SELECT 3, 'large object', m.oid::text
  FROM pg_largeobject_metadata m
  WHERE NOT current_setting('lo_compat_privileges')::boolean
    AND NOT pg_has_role(m.lomowner, 'USAGE')
    AND NOT EXISTS (SELECT 1 FROM aclexplode(m.lomacl) a
                    WHERE a.privilege_type = 'SELECT'
                      AND (a.grantee = 0 OR pg_has_role(a.grantee, 'USAGE')))
) o
ORDER BY rank, name
"""

IS_SUPERUSER_SQL = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"


@dataclass(frozen=True)
class Unreadable:
    kind: str  # schema, table, sequence, large object
    name: str

    def describe(self) -> str:
        return f"{self.kind} {self.name}"


def is_superuser(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    row = conn.execute(IS_SUPERUSER_SQL).fetchone()
    return bool(row and row[0])


def unreadable_objects(conn: psycopg.Connection[tuple[object, ...]]) -> list[Unreadable]:
    """What pg_dump would read in the connected database that the login may not (none
    for a superuser, who may read everything)."""
    if is_superuser(conn):
        return []
    rows = conn.execute(UNREADABLE_SQL).fetchall()
    return [Unreadable(as_text(kind), as_text(name)) for kind, name in rows]


def denial_message(login: str, database: str, objects: list[Unreadable]) -> str:
    """One line naming what the login may not read (at most NAMED_LIMIT, then a count)."""
    named = ", ".join(o.describe() for o in objects[:NAMED_LIMIT])
    more = len(objects) - NAMED_LIMIT
    rest = f" and {more} more" if more > 0 else ""
    return (
        f"cannot back up {database}: permission denied for {named}{rest} "
        f"(login {login} may not read it; grant it SELECT/USAGE, or back up with a login "
        "that may)"
    )
