"""The one restore pipeline of ``drill run`` and ``restore db``: create the roles the
backup references where the server lacks them, create the database from template0 with
the recorded encoding, locale, owner, settings, comment and grants, then pg_restore with
the same options. The callers differ only in where (a sandbox, or a target server) and
in what surrounds it (``restore db``: a temporary name, swapped into place)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from backdrill.pg import binaries
from backdrill.pg.connection import ConnParams, first_line
from backdrill.pg.database_properties import (
    DatabaseProperties,
    apply_statements,
    create_statement,
    property_statements,
)
from backdrill.pg.restore import RestoreOptions, pg_restore
from backdrill.pg.role_restore import RolesOutcome, create_missing_roles, owner_problem
from backdrill.pg.roles import RoleFacts
from backdrill.repository.manifest import DbManifest
from backdrill.runtime.errors import PostgresError
from backdrill.runtime.interrupts import shielded
from backdrill.runtime.progress import Reporter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineOptions:
    jobs: int
    #: ``restore db --no-owner``: no ownership nor grants restored, no role created
    no_owner: bool = False
    #: ``restore db --keep-tablespaces``; drills restore without tablespaces
    keep_tablespaces: bool = False
    #: where to look for pg_restore first (``postgres -> bin_dir``)
    bin_dir: Path | None = None


@dataclass(frozen=True)
class Restored:
    """What the pipeline did besides restoring the dump."""

    created_roles: list[RoleFacts] = field(default_factory=list)
    #: how the roles differ from the record (a login that is not a superuser)
    role_notes: list[str] = field(default_factory=list)


def restore_backup(
    manifest: DbManifest,
    dump: Path,
    admin: ConnParams,
    database: str,
    options: PipelineOptions,
    reporter: Reporter | None = None,
) -> Restored:
    """Restore the downloaded ``dump`` of ``manifest`` into a new database ``database``
    of the server ``admin`` connects to (the maintenance database)."""
    props = manifest.database_properties
    with admin.connect() as conn:
        major = conn.info.server_version // 10000
        roles = RolesOutcome()
        if not options.no_owner:
            roles = create_missing_roles(conn, manifest.roles or [])
            problem = owner_problem(conn, props.owner) if props is not None else None
            if problem is not None:
                raise PostgresError(
                    f"cannot give database {database} to its recorded owner: {problem}",
                    hint="or restore with --no-owner",
                )
    create_database(admin, database, props, major, owner_and_grants=not options.no_owner)
    source_major = binaries.major_version(manifest.server_version)
    program = binaries.find_program("pg_restore", max(major, source_major), bin_dir=options.bin_dir)
    restore_options = RestoreOptions(
        jobs=options.jobs,
        no_owner=options.no_owner,
        no_privileges=options.no_owner,
        no_tablespaces=not options.keep_tablespaces,
    )
    pg_restore(program, dump, admin.with_db(database), restore_options, reporter)
    return Restored(roles.created, roles.notes)


def create_database(
    admin: ConnParams,
    name: str,
    props: DatabaseProperties | None,
    major: int,
    *,
    owner_and_grants: bool = True,
) -> None:
    """``CREATE DATABASE name`` with the recorded properties (template0 and the server's
    defaults for a manifest that has none). Shielded: a CREATE the server finishes after
    the client gave up on it would escape the caller's clean-up."""
    statement = create_statement(name, props, major)
    with shielded(), admin.connect() as conn:
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            raise PostgresError(_create_failure(name, props, exc)) from None
    if props is None:
        return
    # from inside the new database: its encoding is the source's, so the comment and
    # settings (text in shared catalogs) come back byte for byte as the backup read them
    statements = property_statements(name, props, owner_and_grants=owner_and_grants)
    with admin.with_db(name).connect() as conn:
        apply_statements(conn, statements, f"cannot set the properties of database {name}")


def _create_failure(name: str, props: DatabaseProperties | None, exc: psycopg.Error) -> str:
    if props is None:
        return f"cannot create database {name}: {first_line(exc)}"
    icu = f", ICU locale {props.icu_locale}" if props.locale_provider == "icu" else ""
    return (
        f"cannot create database {name} with encoding {props.encoding}, collation "
        f"{props.collate}, ctype {props.ctype}{icu} as the backup recorded: {first_line(exc)} "
        "(the server must provide this collation and locale)"
    )


def created_roles_notice(roles: list[RoleFacts]) -> str | None:
    """What ``restore db`` says about the roles it had to create."""
    if not roles:
        return None
    names = ", ".join(r.describe() for r in roles)
    return (
        f"created {len(roles)} role(s) the backup references and the server lacked: {names}; "
        "they have no password: set one (ALTER ROLE … PASSWORD) before they log in"
    )


def tablespaces_notice(props: DatabaseProperties | None, *, kept: bool) -> str | None:
    """What ``restore db`` says about the source's tablespaces."""
    if props is None or not props.tablespaces or kept:
        return None
    return (
        f"the source used tablespace(s) {', '.join(props.tablespaces)}; their objects were "
        "restored into the default tablespace (--keep-tablespaces keeps them)"
    )
