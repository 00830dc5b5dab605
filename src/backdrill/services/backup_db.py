"""``backup db``: pg_dump → zstd → sha256 → storage, then the manifest, written last.

The dump and the per-table row counts describe the same instant: a REPEATABLE READ
transaction exports its snapshot, counts every user table in it, and pg_dump imports
it with ``--snapshot``. ``created_at`` is that snapshot's moment (the recovery point).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import psycopg

from backdrill import __version__
from backdrill.catalog import backup_dir
from backdrill.crypto import EncryptingSink, encrypt_bytes, keys_for, seal_fields
from backdrill.errors import BackdrillError, PostgresError, UsageError
from backdrill.interrupts import shielded
from backdrill.locks import RepoLock, db_scope
from backdrill.manifest import DUMP_NAME, MANIFEST_NAME, SCHEMA_VERSION, DbManifest, TableRows
from backdrill.odoo import OdooFacts, odoo_facts
from backdrill.pg import binaries
from backdrill.pg.command import Child
from backdrill.pg.connection import ConnParams, first_line, list_databases, server_version
from backdrill.pg.introspect import count_rows
from backdrill.services.context import RunContext
from backdrill.streams import CountingReader, HashingSink, compress_stream, compression_threads
from backdrill.timeutil import new_id, utcnow
from backdrill.zstdio import compressed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DbBackupOutcome:
    database: str
    manifest: DbManifest | None
    error: BackdrillError | None


def resolve_databases(
    ctx: RunContext, params: ConnParams, database: str | None, all_databases: bool
) -> list[str]:
    if database and all_databases:
        raise UsageError("give either --database NAME or --all, not both")
    if database:
        return [database]
    configured = ctx.config.postgres.databases
    if all_databases or configured == "all":
        with params.connect() as conn:
            return list_databases(conn)
    if configured:
        return list(configured)
    raise UsageError(
        "no database to back up",
        hint="pass --database NAME or --all, or set postgres -> databases",
    )


class _SnapshotFacts(threading.Thread):
    """Counts rows (and reads Odoo facts) in the snapshot transaction while pg_dump
    streams, so they describe exactly what the dump holds."""

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        super().__init__(name="row-counts", daemon=True)
        self.conn = conn
        self.tables: list[TableRows] = []
        self.odoo: OdooFacts | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.tables = count_rows(self.conn)
            self.odoo = odoo_facts(self.conn)
        except BaseException as exc:
            self.error = exc

    def outcome(self) -> tuple[list[TableRows], OdooFacts | None]:
        self.join()
        if self.error is not None:
            raise PostgresError(f"counting rows failed: {first_line(self.error)}")
        return self.tables, self.odoo


def backup_database(ctx: RunContext, params: ConnParams, database: str) -> DbManifest:
    """Back up one database; return its committed manifest."""
    cfg = ctx.config
    db_params = params.with_db(database)
    started_at = utcnow()
    with db_params.connect(autocommit=True) as conn:
        version = server_version(conn)
        pg_dump = binaries.find_program(
            "pg_dump", int(version.split(".")[0]), bin_dir=cfg.postgres.bin_dir
        )
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = conn.execute("SELECT pg_export_snapshot(), statement_timestamp()").fetchone()
        except psycopg.Error as exc:
            raise PostgresError(
                f"cannot export a snapshot of {database}: {first_line(exc)}"
            ) from None
        assert row is not None
        snapshot, created_at = str(row[0]), row[1]
        assert isinstance(created_at, datetime)
        backup_id = new_id(created_at)
        prefix = backup_dir(database, backup_id)
        log.info(
            "backup of %s started",
            database,
            extra={
                "fields": {
                    "database": database,
                    "backup_id": backup_id,
                    "server_version": version,
                    "pg_dump": str(pg_dump.path),
                }
            },
        )
        facts = _Facts(database, backup_id, started_at, created_at, version, pg_dump.version)
        counter = _SnapshotFacts(conn)
        counter.start()
        argv: list[str | Path] = [
            pg_dump.path,
            "--format=custom",
            "--compress=0",
            f"--snapshot={snapshot}",
            "--no-password",
        ]
        try:
            return _dump_and_commit(ctx, conn, counter, argv, db_params, prefix, facts)
        except BaseException:
            _remove_uncommitted(ctx, prefix)
            raise
        finally:
            counter.join()
            if not conn.closed:
                conn.execute("ROLLBACK")


def _remove_uncommitted(ctx: RunContext, prefix: str) -> None:
    """After a failure or an interrupt, delete a dump object that got stored but whose
    manifest did not: an orphan is no backup, only clutter for prune. When the manifest
    did get written (the interrupt came after), the backup stands."""
    with shielded():
        _remove_if_uncommitted(ctx, prefix)


def _remove_if_uncommitted(ctx: RunContext, prefix: str) -> None:
    try:
        if ctx.storage.head(prefix + MANIFEST_NAME) is None:
            ctx.storage.delete(prefix + DUMP_NAME)
    except Exception as exc:  # object lock, storage down: prune removes it later
        log.warning("could not remove the uncommitted dump %s%s: %s", prefix, DUMP_NAME, exc)


@dataclass(frozen=True)
class _Facts:
    database: str
    backup_id: str
    started_at: datetime
    created_at: datetime
    version: str
    pg_dump_version: str


def _dump_and_commit(
    ctx: RunContext,
    conn: psycopg.Connection[tuple[object, ...]],
    counter: _SnapshotFacts,
    argv: list[str | Path],
    db_params: ConnParams,
    prefix: str,
    facts: _Facts,
) -> DbManifest:
    cfg = ctx.config
    database, backup_id = facts.database, facts.backup_id
    keys = keys_for(cfg.storage.encryption)
    with (
        Child(argv, env=db_params.child_env(), what="pg_dump") as dump,
        ctx.reporter.task(f"dump {database}") as advance,
        ctx.storage.open_writer(prefix + DUMP_NAME) as writer,
    ):
        source = CountingReader(dump.stdout, advance)
        sink = HashingSink(writer)  # the stored bytes: ciphertext when encrypted
        encrypting = EncryptingSink(sink, keys) if keys else None
        compress_stream(
            source,
            encrypting or sink,
            level=cfg.backup.compression_level,
            threads=compression_threads(cfg.backup.compression_threads),
        )
        if encrypting is not None:
            encrypting.close()
        dump.check()
        tables, odoo = counter.outcome()
    finished_at = utcnow()
    manifest = DbManifest(
        schema_version=SCHEMA_VERSION,
        id=backup_id,
        database=database,
        created_at=facts.created_at,
        started_at=facts.started_at,
        finished_at=finished_at,
        object=DUMP_NAME,
        compression={"algorithm": "zstd", "level": cfg.backup.compression_level},
        raw_size=source.count,
        stored_size=sink.count,
        sha256=sink.hexdigest(),
        server_version=facts.version,
        pg_dump_version=facts.pg_dump_version,
        backdrill_version=__version__,
        run_id=ctx.run_id,
        host=ctx.host,
        tables=tables,
        odoo=odoo,
    )
    document = manifest.to_json()
    if keys is not None:
        document = json.dumps(seal_fields(json.loads(document), keys), indent=2)
    ctx.storage.put_bytes(prefix + MANIFEST_NAME, document.encode())
    log.info(
        "backup of %s committed",
        database,
        extra={
            "fields": {
                "database": database,
                "backup_id": backup_id,
                "raw_size": manifest.raw_size,
                "stored_size": manifest.stored_size,
                "seconds": round((finished_at - facts.started_at).total_seconds(), 3),
            }
        },
    )
    return manifest


def backup_globals(ctx: RunContext, params: ConnParams) -> str | None:
    """Roles and tablespaces (``pg_dumpall --globals-only --no-role-passwords``); a
    warning, not a failure, where the server does not permit it (managed PostgreSQL)."""
    cfg = ctx.config
    try:
        with params.connect() as conn:
            major = int(server_version(conn).split(".")[0])
        pg_dumpall = binaries.find_program("pg_dumpall", major, bin_dir=cfg.postgres.bin_dir)
        argv: list[str | Path] = [
            pg_dumpall.path,
            "--globals-only",
            "--no-role-passwords",
            "--no-password",
            f"--database={params.dbname}",
        ]
        with Child(argv, env=params.child_env(), what="pg_dumpall") as child:
            data = child.stdout.read()
            child.check()
    except PostgresError as exc:
        log.warning("roles were not saved: %s", exc)
        return None
    key = f"globals/{new_id()}.sql.zst"
    keys = keys_for(cfg.storage.encryption)
    stored = compressed(data)
    if keys is not None:
        key += ".age"
        stored = encrypt_bytes(stored, keys)
    ctx.storage.put_bytes(key, stored)
    log.info("roles and tablespaces saved", extra={"fields": {"key": key}})
    return key


def run_backup_db(
    ctx: RunContext,
    *,
    database: str | None = None,
    all_databases: bool = False,
    wait: timedelta | None = None,
) -> list[DbBackupOutcome]:
    """Back up each selected database, one after the other, each under its lock
    (``locks/db-<name>``); a failure of one does not stop the others."""
    params = ConnParams.from_config(ctx.config.postgres)
    databases = resolve_databases(ctx, params, database, all_databases)
    outcomes: list[DbBackupOutcome] = []
    for name in databases:
        try:
            lock = RepoLock(
                ctx.storage, db_scope(name), run_id=ctx.run_id, command="backup db", wait=wait
            )
            with lock:
                outcomes.append(DbBackupOutcome(name, backup_database(ctx, params, name), None))
        except BackdrillError as exc:
            outcomes.append(DbBackupOutcome(name, None, exc))
    if (all_databases or ctx.config.postgres.databases == "all") and ctx.config.backup.globals:
        backup_globals(ctx, params)
    return outcomes
