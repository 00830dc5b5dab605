"""Before a restore: create the roles the backup references and the server lacks, as far
as the login may.

A superuser creates each one as recorded. A login that is not (managed PostgreSQL: LOGIN
CREATEDB CREATEROLE) creates them without the attributes only a superuser may give
(SUPERUSER, REPLICATION, BYPASSRLS), and is made a member of each role it creates so it
may give that role the database and its objects (``ALTER … OWNER TO`` needs membership).
A login without CREATEROLE creates none. Each departure from the record is a note for the
output, never a failed restore."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from backdrill.pg.connection import as_text, first_line
from backdrill.pg.roles import RoleFacts
from backdrill.runtime.errors import PostgresError

log = logging.getLogger(__name__)

LOGIN_SQL = (
    "SELECT current_user, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user"
)


@dataclass(frozen=True)
class Login:
    """What the connected login may do with roles."""

    name: str
    superuser: bool
    createrole: bool


@dataclass
class RolesOutcome:
    created: list[RoleFacts] = field(default_factory=list)
    #: each way the roles on the server differ from the record, one line each
    notes: list[str] = field(default_factory=list)


def read_login(conn: psycopg.Connection[tuple[object, ...]]) -> Login:
    row = conn.execute(LOGIN_SQL).fetchone()
    if row is None:  # a login always has its pg_roles row
        raise PostgresError("cannot read the login's own role (pg_roles)")
    return Login(as_text(row[0]), bool(row[1]), bool(row[2]))


def creatable(role: RoleFacts, login: Login) -> tuple[RoleFacts | None, str | None]:
    """The role ``login`` may create for the recorded ``role`` (None: none), and what
    differs from the record (None: nothing)."""
    if login.superuser:
        return role, None
    if not login.createrole:
        return None, (
            f"role {role.name} was not created: login {login.name} lacks CREATEROLE "
            "(create it first, or restore with --no-owner)"
        )
    powers = role.powers()
    if not powers:
        return role, None
    plain = role.model_copy(update={"superuser": False, "replication": False, "bypassrls": False})
    return plain, (
        f"role {role.name} was created without {', '.join(powers)}: login {login.name} is "
        "not a superuser and may not give it"
    )


def existing_roles(conn: psycopg.Connection[tuple[object, ...]], names: list[str]) -> set[str]:
    rows = conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (names,))
    return {as_text(r[0]) for r in rows.fetchall()}


def create_missing_roles(
    conn: psycopg.Connection[tuple[object, ...]], roles: list[RoleFacts]
) -> RolesOutcome:
    """Create each recorded role the server lacks, as far as the login may, with no
    password, then its memberships; roles that exist are left as they are."""
    login = read_login(conn)
    present = existing_roles(conn, [r.name for r in roles])
    outcome = RolesOutcome()
    for role in (r for r in roles if r.name not in present):
        plan, note = creatable(role, login)
        if note is not None:
            log.warning("%s", note)
            outcome.notes.append(note)
        if plan is None:
            continue
        _execute(
            conn,
            sql.SQL("CREATE ROLE {} WITH {}").format(
                sql.Identifier(plan.name), plan.attributes_sql()
            ),
            f"cannot create role {plan.name}",
        )
        log.info("role %s created (no password)", plan.name)
        outcome.created.append(plan)
        if not login.superuser:  # to give it ownership of the database and its objects
            _execute(
                conn,
                _grant(plan.name, login.name),
                f"cannot make login {login.name} a member of role {plan.name}",
            )
            outcome.notes.append(
                f"login {login.name} was made a member of role {plan.name} (to give it "
                "ownership of what it owned)"
            )
    for role in outcome.created:
        outcome.notes.extend(_grant_memberships(conn, role, login))
    return outcome


def _grant(parent: str, member: str) -> sql.Composed:
    return sql.SQL("GRANT {} TO {}").format(sql.Identifier(parent), sql.Identifier(member))


def _grant_memberships(
    conn: psycopg.Connection[tuple[object, ...]], role: RoleFacts, login: Login
) -> list[str]:
    """Make ``role`` a member of its recorded parents; a login that is not a superuser
    notes the grants the server refuses it (a superuser parent) instead of failing."""
    notes: list[str] = []
    parents = existing_roles(conn, role.member_of)
    for parent in role.member_of:
        if parent not in parents:
            log.warning("role %s: no role %s to make it a member of", role.name, parent)
            continue
        what = f"cannot make role {role.name} a member of {parent}"
        try:
            conn.execute(_grant(parent, role.name))
        except psycopg.Error as exc:
            if login.superuser:
                raise PostgresError(f"{what}: {first_line(exc)}") from None
            notes.append(f"{what}: {first_line(exc)}")
    return notes


def _execute(conn: psycopg.Connection[tuple[object, ...]], query: sql.Composed, what: str) -> None:
    try:
        conn.execute(query)
    except psycopg.Error as exc:
        raise PostgresError(f"{what}: {first_line(exc)}") from None


def owner_problem(conn: psycopg.Connection[tuple[object, ...]], owner: str) -> str | None:
    """Why the login cannot give a database to ``owner`` (None: it can): the role is
    missing, or the login is not a member of it."""
    row = conn.execute(
        "SELECT r.oid IS NOT NULL, r.oid IS NOT NULL AND pg_has_role(r.oid, 'MEMBER') "
        "FROM (SELECT 1) one LEFT JOIN pg_roles r ON r.rolname = %s",
        (owner,),
    ).fetchone()
    exists, member = (bool(row[0]), bool(row[1])) if row else (False, False)
    if not exists:
        return f"its recorded owner, role {owner}, does not exist on the server"
    if not member:
        return (
            f"login {conn.info.user} is not a member of its recorded owner, role {owner} "
            f"(GRANT {owner} TO {conn.info.user} first)"
        )
    return None
