"""The roles a database references, recorded at backup time and created where missing
before a restore: owners (of objects and of the database), grantees of ACLs (default
privileges and the database's own included), roles of row-security policies, and the
roles these are members of. Attributes are recorded, passwords never (``pg_roles``
shows none)."""

from __future__ import annotations

from typing import Annotated

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field

from backdrill.pg.connection import as_text

#: a role name (63 bytes in PostgreSQL); anything longer in a manifest is refused
NAME_LIMIT = 256
#: PostgreSQL text never holds NUL: a manifest that does is refused when parsed
NO_NUL = r"^[^\x00]*$"
RoleName = Annotated[str, Field(min_length=1, max_length=NAME_LIMIT, pattern=NO_NUL)]
#: the first oid of a user-created object: lower ones are built in (pg_read_all_data...)
FIRST_USER_OID = 16384
BOOTSTRAP_SUPERUSER_OID = 10

# pg_shdepend: 'o' owner, 'a' ACL grantee, 'r' policy role, 'i' initial ACL; rows of
# this database, and those of the database itself (dbid 0: owner, database grants).
REFERENCED_ROLES_SQL = """
WITH RECURSIVE db AS (
  SELECT oid, datdba FROM pg_database WHERE datname = current_database()
), direct AS (
  SELECT s.refobjid AS role FROM pg_shdepend s, db
  WHERE s.refclassid = 'pg_authid'::regclass AND s.deptype IN ('o', 'a', 'r', 'i')
    AND (s.dbid = db.oid
         OR (s.dbid = 0 AND s.classid = 'pg_database'::regclass AND s.objid = db.oid))
  UNION SELECT datdba FROM db
), closure AS (
  SELECT role FROM direct
  UNION SELECT m.roleid FROM pg_auth_members m JOIN closure c ON m.member = c.role
)
SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb,
       r.rolcanlogin, r.rolreplication, r.rolbypassrls, r.rolconnlimit,
       ARRAY(SELECT p.rolname FROM pg_auth_members m JOIN pg_roles p ON p.oid = m.roleid
             WHERE m.member = r.oid ORDER BY 1)
FROM pg_roles r
WHERE r.oid IN (SELECT role FROM closure)
  AND (r.oid >= %(first_user)s OR r.oid = %(bootstrap)s)
ORDER BY r.rolname
"""


class RoleFacts(BaseModel):
    """One role as the manifest records it: its attributes and memberships."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: RoleName
    superuser: bool = False
    inherit: bool = True
    createrole: bool = False
    createdb: bool = False
    login: bool = False
    replication: bool = False
    bypassrls: bool = False
    connection_limit: int = -1
    member_of: list[RoleName] = Field(default_factory=list, max_length=10_000)

    def attributes_sql(self) -> sql.Composable:
        flags = [
            ("SUPERUSER", self.superuser),
            ("INHERIT", self.inherit),
            ("CREATEROLE", self.createrole),
            ("CREATEDB", self.createdb),
            ("LOGIN", self.login),
            ("REPLICATION", self.replication),
            ("BYPASSRLS", self.bypassrls),
        ]
        words = [name if on else f"NO{name}" for name, on in flags]
        words.append(f"CONNECTION LIMIT {int(self.connection_limit)}")
        return sql.SQL(" ".join(words))

    def powers(self) -> list[str]:
        """The attributes only a superuser may give: SUPERUSER, REPLICATION, BYPASSRLS."""
        flags = (
            ("SUPERUSER", self.superuser),
            ("REPLICATION", self.replication),
            ("BYPASSRLS", self.bypassrls),
        )
        return [name for name, on in flags if on]

    def describe(self) -> str:
        flags = ["LOGIN" if self.login else "NOLOGIN"]
        flags += [n for n, on in (("SUPERUSER", self.superuser), ("CREATEDB", self.createdb)) if on]
        return f"{self.name} ({', '.join(flags)})"


def referenced_roles(conn: psycopg.Connection[tuple[object, ...]]) -> list[RoleFacts]:
    """The roles the connected database references (its current snapshot)."""
    rows = conn.execute(
        REFERENCED_ROLES_SQL,
        {"first_user": FIRST_USER_OID, "bootstrap": BOOTSTRAP_SUPERUSER_OID},
    ).fetchall()
    return [
        RoleFacts(
            name=as_text(r[0]),
            superuser=bool(r[1]),
            inherit=bool(r[2]),
            createrole=bool(r[3]),
            createdb=bool(r[4]),
            login=bool(r[5]),
            replication=bool(r[6]),
            bypassrls=bool(r[7]),
            connection_limit=int(str(r[8])),
            member_of=[as_text(m) for m in r[9]],  # type: ignore[attr-defined]
        )
        for r in rows
    ]
