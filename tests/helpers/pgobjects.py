"""PostgreSQL objects that need more than SQL to make: a tablespace needs a directory
the server's user owns; a second, empty cluster stands for a new server; a scratch
database must be dropped whatever the test did."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from backdrill.pg.cluster import LocalCluster
from backdrill.pg.connection import ConnParams


def tablespace_dir(cluster: LocalCluster) -> Path:
    """An empty directory under /tmp owned by the server's user (delete it after)."""
    parent = Path(tempfile.mkdtemp(prefix="backdrill-test-ts-"))
    parent.chmod(0o755)
    location = parent / "ts"
    location.mkdir(mode=0o700)
    if cluster.run_as:
        shutil.chown(location, cluster.run_as, cluster.run_as)
    return location


def create_tablespace(pg: ConnParams, cluster: LocalCluster, name: str) -> Path:
    location = tablespace_dir(cluster)
    with pg.connect() as conn:
        conn.execute(f"CREATE TABLESPACE \"{name}\" LOCATION '{location}'")
    return location


def drop_tablespace(pg: ConnParams, name: str, location: Path) -> None:
    with pg.connect() as conn:
        conn.execute(f'DROP TABLESPACE IF EXISTS "{name}"')
    shutil.rmtree(location.parent, ignore_errors=True)


def dsn(pg: ConnParams, dbname: str) -> str:
    """A DSN without the password (restore db reads it from PGPASSWORD)."""
    return f"host={pg.host} port={pg.port} user={pg.user} dbname={dbname} sslmode=disable"


def create_item_database(pg: ConnParams, name: str, rows: int, *, label_pad: int = 0) -> None:
    """A database ``name`` of one table ``item`` of ``rows`` rows (labels padded with
    ``label_pad`` more bytes each, to make the dump larger)."""
    with pg.connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    with pg.with_db(name).connect() as conn:
        conn.execute("CREATE TABLE item (id int PRIMARY KEY, label text)")
        conn.execute(
            "INSERT INTO item SELECT g, md5(g::text) || repeat('x', %s) "
            "FROM generate_series(1, %s) g",
            (label_pad, rows),
        )


@contextmanager
def scratch_database(
    pg: ConnParams, prefix: str, *statements: str, create: str = ""
) -> Iterator[str]:
    """A new database ``<prefix>_<random>`` (``create``: the options of its CREATE
    DATABASE) with ``statements`` run in it; dropped on the way out, whatever happened."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with pg.connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}" {create}')  # type: ignore[arg-type]
    try:
        with pg.with_db(name).connect() as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]
        yield name
    finally:
        with pg.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
