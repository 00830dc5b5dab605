"""Connection parameters: built from the config and libpq's own environment variables.

Secrets travel to child programs only through their environment (PGPASSWORD), never
argv; every other parameter goes through the environment too, so a database name with
``=`` or spaces is never parsed as a connection string. When TLS is in use, libpq
refuses anything below ``ssl_min_protocol_version`` (TLS 1.3 unless ``security ->
tls_min_version`` lowers it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import psycopg
from psycopg import sql

from backdrill.config.model import PostgresConfig
from backdrill.config.security import SecurityConfig
from backdrill.config.tls import is_version_refusal, refusal_hint
from backdrill.runtime import retry
from backdrill.runtime.errors import PostgresError
from backdrill.runtime.redact import SECRETS
from backdrill.runtime.retry import RetryPolicy

#: connection attempts at start: rides out a restart of a few seconds
CONNECT_RETRY = RetryPolicy(attempts=5, max_seconds=20, base_seconds=0.5, max_wait_seconds=5)
#: 57P03 cannot_connect_now (starting up, shutting down), 53300 too_many_connections,
#: 08xxx connection exceptions reported by the server
_TRANSIENT_SQLSTATES = {"57P03", "53300", "08000", "08001", "08004", "08006"}
_TRANSIENT_TEXT = (
    "connection refused",
    "timeout expired",
    "could not connect to server",
    "server closed the connection unexpectedly",
    "the database system is starting up",
    "the database system is shutting down",
    "too many clients",
    "connection reset",
)


@dataclass(frozen=True)
class ConnParams:
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sslmode: str | None = None
    connect_timeout: int = 10
    dbname: str = "postgres"
    #: libpq's name: TLSv1.2 or TLSv1.3 (applies only when TLS is in use)
    ssl_min_protocol_version: str = "TLSv1.3"

    @classmethod
    def from_config(cls, cfg: PostgresConfig, security: SecurityConfig | None = None) -> ConnParams:
        return cls(
            host=cfg.host,
            port=cfg.port,
            user=cfg.user,
            password=cfg.password.get_secret_value() if cfg.password else None,
            sslmode=cfg.sslmode,
            connect_timeout=cfg.connect_timeout,
            dbname=cfg.maintenance_db,
            ssl_min_protocol_version=(security or SecurityConfig()).libpq_min,
        )

    def with_db(self, dbname: str) -> ConnParams:
        return replace(self, dbname=dbname)

    def kwargs(self) -> dict[str, str | int]:
        """Keyword arguments for psycopg.connect (unset ones fall back to libpq's env)."""
        out: dict[str, str | int] = {"dbname": self.dbname, "connect_timeout": self.connect_timeout}
        for key in ("host", "port", "user", "password", "sslmode"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["ssl_min_protocol_version"] = self.ssl_min_protocol_version
        out["application_name"] = "backdrill"
        return out

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for pg_dump/pg_restore/psql: libpq variables, password included."""
        env = dict(os.environ if base is None else base)
        mapping = {
            "PGHOST": self.host,
            "PGPORT": str(self.port) if self.port is not None else None,
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGSSLMODE": self.sslmode,
            "PGSSLMINPROTOCOLVERSION": self.ssl_min_protocol_version,
            "PGDATABASE": self.dbname,
            "PGCONNECT_TIMEOUT": str(self.connect_timeout),
        }
        for key, value in mapping.items():
            if value is not None:
                env[key] = value
        env["PGAPPNAME"] = "backdrill"
        return env

    def describe(self) -> str:
        """``user@host:port/db`` with the defaults libpq would use; no password."""
        host = self.host or os.environ.get("PGHOST") or "localhost"
        port = self.port or os.environ.get("PGPORT") or 5432
        user = self.user or os.environ.get("PGUSER") or ""
        who = f"{user}@" if user else ""
        return f"{who}{host}:{port}/{self.dbname}"

    def connect(
        self, *, autocommit: bool = True, policy: RetryPolicy = CONNECT_RETRY
    ) -> psycopg.Connection[tuple[object, ...]]:
        """Connect; a refused connection, a server starting up or out of connection
        slots is retried (``policy``); a wrong password or a missing database is not."""
        try:
            return retry.call(
                lambda: psycopg.connect(**self.kwargs(), autocommit=autocommit),  # type: ignore[arg-type]
                policy=policy,
                transient=is_transient_connect_error,
                what=f"connecting to PostgreSQL at {self.describe()}",
                describe=first_line,
            )
        except psycopg.Error as exc:
            notes = "; ".join(getattr(exc, "__notes__", ()))
            if is_version_refusal(str(exc)):
                notes = "; ".join(filter(None, (notes, refusal_hint())))
            raise PostgresError(
                f"cannot connect to PostgreSQL at {self.describe()}: {first_line(exc)}"
                + (f" ({notes})" if notes else "")
            ) from None


def is_transient_connect_error(exc: BaseException) -> bool:
    if not isinstance(exc, psycopg.OperationalError):
        return False
    if exc.sqlstate is not None:
        return exc.sqlstate in _TRANSIENT_SQLSTATES
    text = str(exc).lower()
    if "password authentication failed" in text or "does not exist" in text:
        return False
    return any(marker in text for marker in _TRANSIENT_TEXT)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return SECRETS.redact(text[0] if text else type(exc).__name__)


def as_text(value: object) -> str:
    """A text value from the server: psycopg returns bytes where the database (hence the
    connection) is SQL_ASCII; those are decoded, never shown as ``b'...'``."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def server_version(conn: psycopg.Connection[tuple[object, ...]]) -> str:
    """``15.4`` from server_version_num."""
    num = conn.info.server_version
    major = num // 10000
    return f"{major}.{num % 100}" if major >= 10 else f"{num // 10000}.{num // 100 % 100}"


def list_databases(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """Every connectable non-template database, by name."""
    rows = conn.execute(
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname"
    ).fetchall()
    return [as_text(r[0]) for r in rows]


def quote_ident(name: str) -> sql.Identifier:
    return sql.Identifier(name)
