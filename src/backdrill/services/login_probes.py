"""``config check``'s rows about the login: whether it is a superuser, what it lacks to
restore (CREATEDB, CREATEROLE), and, for a login that is not a superuser, what of each
database to back up it may not read (pg/privileges.py), with PostgreSQL's reason."""

from __future__ import annotations

import psycopg

from backdrill.pg.connection import ConnParams, first_line
from backdrill.pg.privileges import NAMED_LIMIT, unreadable_objects
from backdrill.pg.role_restore import read_login
from backdrill.runtime.errors import BackdrillError
from backdrill.storage.base import ProbeResult

#: databases whose privileges are checked at most (``databases: all`` on a big server)
DATABASE_LIMIT = 100

CREATEDB_SQL = "SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user"


def login_probes(
    conn: psycopg.Connection[tuple[object, ...]], params: ConnParams, databases: list[str]
) -> list[ProbeResult]:
    try:
        return _login_probes(conn, params, databases)
    except psycopg.Error as exc:
        return [ProbeResult("postgres login", False, first_line(exc))]


def _login_probes(
    conn: psycopg.Connection[tuple[object, ...]], params: ConnParams, databases: list[str]
) -> list[ProbeResult]:
    login = read_login(conn)
    if login.superuser:
        return [ProbeResult("postgres login", True, f"login {login.name} is a superuser")]
    row = conn.execute(CREATEDB_SQL).fetchone()
    lacks = []
    if not (row and row[0]):
        lacks.append("lacks CREATEDB: restore db cannot create the database")
    if not login.createrole:
        lacks.append("lacks CREATEROLE: restore db cannot create missing roles")
    detail = f"login {login.name} is not a superuser: OK" + "".join(f"; {x}" for x in lacks)
    rows = [ProbeResult("postgres login", True, detail)]
    rows.extend(_readable(params, name) for name in databases[:DATABASE_LIMIT])
    if len(databases) > DATABASE_LIMIT:
        rows.append(
            ProbeResult(
                "readable by the login",
                True,
                f"{len(databases) - DATABASE_LIMIT} more databases not checked",
            )
        )
    return rows


def _readable(params: ConnParams, database: str) -> ProbeResult:
    """Whether the login may read all of ``database`` that pg_dump reads."""
    name = f"readable {database}"
    try:
        with params.with_db(database).connect() as conn:
            denied = unreadable_objects(conn)
    except BackdrillError as exc:
        return ProbeResult(name, False, str(exc))
    except psycopg.Error as exc:
        return ProbeResult(name, False, first_line(exc))
    if not denied:
        return ProbeResult(name, True, "the login may read every table it holds")
    named = "; ".join(
        f"cannot read {o.describe()} ({o.reason().split(' for ', 1)[0]})"
        for o in denied[:NAMED_LIMIT]
    )
    more = len(denied) - NAMED_LIMIT
    return ProbeResult(name, False, named + (f"; and {more} more" if more > 0 else ""))
