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
SELECT kind, name, rls FROM (
  SELECT 1 AS rank, 'schema' AS kind, s.nspname::text AS name, false AS rls
  FROM user_schemas s WHERE NOT has_schema_privilege(s.oid, 'USAGE')
  UNION ALL
  SELECT 2, CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END,
         quote_ident(s.nspname) || '.' || quote_ident(c.relname),
         has_table_privilege(c.oid, 'SELECT')
  FROM pg_class c JOIN user_schemas s ON s.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'S') AND c.relpersistence <> 't'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                    AND d.objid = c.oid AND d.deptype = 'e')
    AND (NOT has_table_privilege(c.oid, 'SELECT')
         -- pg_dump reads with row_security off: a policy the login is subject to fails it
         OR (c.relrowsecurity AND NOT pg_has_role(c.relowner, 'USAGE')
             AND NOT (SELECT rolbypassrls FROM pg_roles WHERE rolname = current_user)))
  UNION ALL
  SELECT 3, 'large object', m.oid::text, false
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
    #: readable, but under a row-level security policy the login is subject to
    row_security: bool = False

    def describe(self) -> str:
        return f"{self.kind} {self.name}"

    def reason(self) -> str:
        """PostgreSQL's words for it, as pg_dump would fail with them."""
        if self.row_security:
            return (
                f"row-level security policy for {self.describe()} (the login is neither "
                "its owner nor BYPASSRLS)"
            )
        return f"permission denied for {self.describe()}"


def is_superuser(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    row = conn.execute(IS_SUPERUSER_SQL).fetchone()
    return bool(row and row[0])


def unreadable_objects(conn: psycopg.Connection[tuple[object, ...]]) -> list[Unreadable]:
    """What pg_dump would read in the connected database that the login may not (none
    for a superuser, who may read everything)."""
    if is_superuser(conn):
        return []
    rows = conn.execute(UNREADABLE_SQL).fetchall()
    return [Unreadable(as_text(kind), as_text(name), bool(rls)) for kind, name, rls in rows]


def denial_message(login: str, database: str, objects: list[Unreadable]) -> str:
    """One line naming what the login may not read (at most NAMED_LIMIT, then a count)."""
    named = "; ".join(o.reason() for o in objects[:NAMED_LIMIT])
    more = len(objects) - NAMED_LIMIT
    rest = f"; and {more} more" if more > 0 else ""
    return (
        f"cannot back up {database}: {named}{rest} (login {login} may not read it all: "
        "grant it what it lacks, or back up with a login that may)"
    )
