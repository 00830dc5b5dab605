"""The sandbox interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Self

import psycopg
from psycopg import sql

from backdrill.pg.connection import ConnParams, first_line
from backdrill.runtime.errors import SandboxError

#: the databases of a fresh cluster that cannot be replaced by a restored copy
TEMPLATES = ("template0", "template1")
#: where a throwaway cluster's maintenance connection goes: never the restored database
MAINTENANCE_DB = "template1"


@dataclass(frozen=True)
class SandboxInfo:
    kind: str
    server_version: str
    address: str
    #: where to restore: a connection to the database the restore pipeline creates
    params: ConnParams
    #: the server's maintenance connection, which creates that database
    admin: ConnParams
    segregated: str
    tuned_for_restore: bool
    newer_major: bool = False


class Sandbox(ABC):
    kind: str

    def __init__(self, *, keep: bool = False) -> None:
        self.keep = keep
        self.info: SandboxInfo | None = None

    @abstractmethod
    def provision(self, database: str) -> SandboxInfo:
        """Start (or reach) the server and choose the name of the drill's database, free
        on the server: the restore pipeline creates it."""

    def check_available(self) -> None:
        """Raise a SandboxError when this kind cannot start here (a missing extra, no
        engine, no server binaries): a drill that cannot start is an ``error``, recorded
        as an attempt, never a failed drill in the evidence chain."""
        return  # the server kind reaches its server when provisioned

    @abstractmethod
    def teardown(self) -> None:
        """Stop and delete everything; idempotent."""

    def connect_hint(self) -> str:
        """How to connect to a kept sandbox (no password: it is in the printed file)."""
        if self.info is None:
            return ""
        p = self.info.params
        return f"psql 'host={p.host} port={p.port} user={p.user} dbname={p.dbname}'"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.keep:
            self.teardown()


def free_throwaway_name(admin: ConnParams, database: str) -> str:
    """The source's own name in a fresh cluster: a database the cluster was born with
    (``postgres``) is dropped to make room; a template cannot be drilled."""
    if database in TEMPLATES:
        raise SandboxError(
            f"database {database} is a template of the server: it cannot be restored "
            "under its own name in a sandbox",
            hint="drill the databases created from it instead",
        )
    try:
        with admin.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
    except psycopg.Error as exc:
        raise SandboxError(f"cannot make room for database {database}: {first_line(exc)}") from None
    return database
