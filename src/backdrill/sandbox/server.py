"""``server``: a scratch PostgreSQL given by DSN; a uniquely named database is created
for the drill and dropped afterwards."""

from __future__ import annotations

import secrets

import psycopg
from psycopg import conninfo, sql

from backdrill.pg.connection import ConnParams, server_version
from backdrill.runtime.errors import ConfigError, SandboxError
from backdrill.sandbox.base import Sandbox, SandboxInfo


def params_from_dsn(dsn: str) -> ConnParams:
    """A libpq DSN or URL -> ConnParams (ConfigError, without the DSN, when malformed)."""
    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise ConfigError("the DSN is not a valid libpq connection string or URL") from None
    port = str(parts.get("port") or "")
    if port and not (port.isascii() and port.isdigit() and 0 < int(port) <= 65535):
        raise ConfigError(
            "the DSN's port is not a port number (1-65535)", hint="one host and one port"
        )
    return ConnParams(
        host=str(parts["host"]) if parts.get("host") else None,
        port=int(port) if port else None,
        user=str(parts["user"]) if parts.get("user") else None,
        password=str(parts["password"]) if parts.get("password") else None,
        sslmode=str(parts["sslmode"]) if parts.get("sslmode") else None,
        dbname=str(parts.get("dbname") or "postgres"),
    )


class ServerSandbox(Sandbox):
    kind = "server"

    def __init__(self, dsn: str, *, keep: bool = False) -> None:
        super().__init__(keep=keep)
        self.admin = params_from_dsn(dsn)
        self.database: str | None = None

    def provision(self, database: str) -> SandboxInfo:
        name = f"backdrill_drill_{secrets.token_hex(4)}"
        with self.admin.connect() as conn:
            version = server_version(conn)
        self.database = name  # created by the restore pipeline, dropped by teardown
        self.info = SandboxInfo(
            kind=self.kind,
            server_version=version,
            address=self.admin.describe().rsplit("/", 1)[0],
            params=self.admin.with_db(name),
            admin=self.admin,
            segregated=f"database {name} on a scratch server given by drill -> server_dsn",
            tuned_for_restore=False,
        )
        return self.info

    def teardown(self) -> None:
        if self.database is None:
            return
        try:
            with self.admin.connect() as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(self.database)
                    )
                )
        except Exception as exc:
            raise SandboxError(
                f"could not drop the drill database {self.database}: {exc}"
            ) from None
        self.database = None
