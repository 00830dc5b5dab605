"""``backup db``: pg_dump → zstd → sha256 → storage, then the manifest, written last.

The dump, the per-table row counts and the content digests (pg/content.py) describe the
same instant: a REPEATABLE READ transaction exports its snapshot, counts and digests
every user table in it (through connections importing it), and pg_dump imports it with
``--snapshot``. ``created_at`` is that snapshot's moment (the recovery point).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, BinaryIO

import psycopg

from backdrill import __version__
from backdrill.config import Config
from backdrill.crypto import EncryptingSink, keys_for, seal_fields
from backdrill.digests import ContentFacts, TableRef
from backdrill.errors import BackdrillError, PostgresError, UsageError
from backdrill.interrupts import cleaning_up
from backdrill.locks import RepoLock, db_scope
from backdrill.manifest import (
    CUSTOM_FORMAT,
    DIRECTORY_FORMAT,
    DIRECTORY_PREFIX,
    DUMP_NAME,
    SCHEMA_VERSION,
    DbManifest,
    StoredObject,
    TableRows,
    tree_digest,
)
from backdrill.odoo import OdooFacts, odoo_facts
from backdrill.pg import binaries
from backdrill.pg.command import Child
from backdrill.pg.connection import (
    ConnParams,
    as_text,
    first_line,
    list_databases,
    server_version,
)
from backdrill.pg.content import (
    Inventory,
    compute_content,
    compute_content_in_snapshot,
    digest_connections,
    inventory,
)
from backdrill.pg.database_properties import DatabaseProperties, read_properties
from backdrill.pg.dumpdir import dump_directory
from backdrill.pg.introspect import count_rows
from backdrill.pg.privileges import denial_message, unreadable_objects
from backdrill.pg.roles import RoleFacts, referenced_roles
from backdrill.progress import Advance
from backdrill.repository.layout import DEFAULT_SOURCE, MANIFEST_NAME, backup_dir, globals_key
from backdrill.services.context import RunContext
from backdrill.services.parallel import run_bounded
from backdrill.sources import Source, configured_sources, find_source
from backdrill.streams import CountingReader, HashingSink, compress_stream, compression_threads
from backdrill.text import terminal
from backdrill.timeutil import new_id, utcnow
from backdrill.zstdio import compressed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DbBackupOutcome:
    database: str
    manifest: DbManifest | None
    error: BackdrillError | None
    source: str = DEFAULT_SOURCE


def resolve_databases(
    source: Source, params: ConnParams, database: str | None, all_databases: bool
) -> list[str]:
    if database and all_databases:
        raise UsageError("give either --database NAME or --all, not both")
    if database:
        return [database]
    configured = source.postgres.databases
    if all_databases or configured == "all":
        with params.connect() as conn:
            return list_databases(conn)
    if configured:
        return list(configured)
    section = "postgres" if source.name == DEFAULT_SOURCE else f"sources -> {source.name}"
    raise UsageError(
        f"no database to back up of source {source.name}",
        hint=f"pass --database NAME or --all, or set {section} -> databases",
    )


def select_sources(config: Config, name: str | None, database: str | None) -> list[Source]:
    """The sources a ``backup db`` run covers: ``--source``, else every configured one;
    with ``--database`` and several sources, the one source that lists the database."""
    if name is not None:
        return [find_source(config, name)]
    sources = configured_sources(config)
    if database is None or len(sources) == 1:
        return sources
    listing = [
        s for s in sources if s.postgres.databases != "all" and database in s.postgres.databases
    ]
    if len(listing) == 1:
        return listing
    names = ", ".join(s.name for s in sources)
    raise UsageError(
        f"--database {terminal(database)} is ambiguous with {len(sources)} sources ({names})",
        hint="pass --source NAME",
    )


class _SnapshotFacts(threading.Thread):
    """Counts rows, computes the content digests (pg/content.py, through their own
    connections importing the snapshot), reads the Odoo facts, the referenced roles and
    the database's own properties in the snapshot transaction while pg_dump streams, so
    they describe exactly what the dump holds."""

    def __init__(
        self,
        conn: psycopg.Connection[tuple[object, ...]],
        params: ConnParams,
        snapshot: str,
        inv: Inventory,
        digest_jobs: int | None,
    ) -> None:
        super().__init__(name="row-counts", daemon=True)
        self.conn = conn
        self.params = params
        self.snapshot = snapshot
        self.inv = inv
        self.digest_jobs = digest_jobs
        self.tables: list[TableRows] = []
        self.content: ContentFacts | None = None
        self.odoo: OdooFacts | None = None
        self.roles: list[RoleFacts] = []
        self.properties: DatabaseProperties | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            # first: the digests on this connection (digest_jobs 0) set its transaction's
            # session settings (search_path among them)
            self.odoo = odoo_facts(self.conn)
            self.roles = referenced_roles(self.conn)
            self.properties = read_properties(self.conn)
            if self.digest_jobs is None:
                self.tables = count_rows(self.conn, frozenset(self.inv.not_dumped))
            else:
                self.content = (
                    compute_content_in_snapshot(self.conn, self.inv)
                    if self.digest_jobs == 0
                    else compute_content(
                        self.params, self.inv, snapshot=self.snapshot, workers=self.digest_jobs
                    )
                )
                self.tables = [
                    TableRows.model_validate(
                        {"schema": t.schema_name, "table": t.name, "rows": t.rows}
                    )
                    for t in self.content.tables
                ]
        except BaseException as exc:
            self.error = exc

    def outcome(self) -> tuple[list[TableRows], ContentFacts | None, OdooFacts | None]:
        self.join()
        if self.error is not None:
            raise PostgresError(f"counting rows failed: {first_line(self.error)}")
        return self.tables, self.content, self.odoo


@dataclass(frozen=True)
class DumpResult:
    objects: list[StoredObject]
    raw_size: int
    stored_size: int
    sha256: str


def _compress_into(
    ctx: RunContext,
    source: IO[bytes] | CountingReader,
    key: str,
    before_commit: Callable[[], None] | None = None,
) -> HashingSink:
    """zstd-compress ``source`` into a new object ``key``, hashing what is stored. The
    object is committed only if ``before_commit`` (e.g. checking pg_dump's exit) passes."""
    cfg = ctx.config.backup
    keys = keys_for(ctx.config.storage.encryption)
    with ctx.storage.open_writer(key) as writer:
        sink = HashingSink(writer)  # the stored bytes: ciphertext when encrypted
        encrypting = EncryptingSink(sink, keys) if keys else None
        compress_stream(
            source,
            encrypting or sink,
            level=cfg.compression_level,
            threads=compression_threads(cfg.compression_threads),
        )
        if encrypting is not None:
            encrypting.close()
        if before_commit is not None:
            before_commit()
    return sink


def _dump_task(ctx: RunContext, database: str, size: int | None) -> AbstractContextManager[Advance]:
    """The progress of a dump, out of an estimate of its size (_estimated_dump_size)."""
    return ctx.reporter.task(f"dump {database}", total=size or None, estimate=True)


def _dump_custom(
    ctx: RunContext,
    argv: list[str | Path],
    env: dict[str, str],
    prefix: str,
    database: str,
    size: int | None,
) -> DumpResult:
    """pg_dump's custom format on stdout, streamed into one object: nothing on disk."""
    argv = [*argv, "--format=custom"]
    with (
        Child(argv, env=env, what="pg_dump") as dump,
        _dump_task(ctx, database, size) as advance,
    ):
        source = CountingReader(dump.stdout, advance)
        sink = _compress_into(ctx, source, prefix + DUMP_NAME, before_commit=dump.check)
    obj = StoredObject(
        name=DUMP_NAME, raw_size=source.count, stored_size=sink.count, sha256=sink.hexdigest()
    )
    return DumpResult([obj], obj.raw_size, obj.stored_size, obj.sha256)


def _dump_directory(
    ctx: RunContext,
    argv: list[str | Path],
    env: dict[str, str],
    prefix: str,
    database: str,
    jobs: int,
    size: int | None,
) -> DumpResult:
    """pg_dump's directory format with ``jobs`` parallel workers: each file is stored
    once pg_dump has finished writing it (pg/dumpdir.py), through the same zstd ->
    sha256 -> storage path as a single-file dump."""
    with _dump_task(ctx, database, size) as advance:

        def store(name: str, fh: BinaryIO, before_commit: Callable[[], None]) -> StoredObject:
            key = f"{prefix}{DIRECTORY_PREFIX}{name}.zst"
            source = CountingReader(fh, advance)
            sink = _compress_into(ctx, source, key, before_commit=before_commit)
            return StoredObject(
                name=key[len(prefix) :],
                raw_size=source.count,
                stored_size=sink.count,
                sha256=sink.hexdigest(),
            )

        objects = dump_directory(argv, env, jobs, ctx.config.backup.work_dir, store)
    raw = sum(o.raw_size for o in objects)
    stored = sum(o.stored_size for o in objects)
    return DumpResult(objects, raw, stored, tree_digest(objects))


# the data pg_dump writes out: user tables (heap and TOAST, not indexes nor catalogs) and
# large objects; pg_database_size, the fallback, also counts indexes and free space (and
# stats every file of the database: asked only when the data's size says nothing)
_DATA_SIZE = """
SELECT coalesce(sum(pg_table_size(c.oid)), 0) + pg_table_size('pg_catalog.pg_largeobject')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
_DATABASE_SIZE = "SELECT pg_database_size(current_database())"


def _estimated_dump_size(conn: psycopg.Connection[Any]) -> int | None:
    """An estimate of the raw dump's size, known before the dump: the size of the data
    (else of the database). None when the server will not tell: progress then shows no
    total, and the backup goes on."""
    try:
        for query in (_DATA_SIZE, _DATABASE_SIZE):
            row = conn.execute(query).fetchone()
            value = row[0] if row else None
            if isinstance(value, int | Decimal) and value > 0:
                return int(value)
    except psycopg.Error as exc:
        log.debug("no database size for the progress bar: %s", first_line(exc))
    return None


def _remove_uncommitted(ctx: RunContext, prefix: str) -> None:
    """After a failure or an interrupt, delete what a backup stored but never committed
    (its manifest was not written): an orphan is no backup, only clutter for prune.
    When the manifest did get written (the interrupt came after), the backup stands."""
    with cleaning_up():
        try:
            if ctx.storage.head(prefix + MANIFEST_NAME) is None:
                for info in list(ctx.storage.list_objects(prefix)):
                    ctx.storage.delete(info.key)
        except Exception as exc:  # object lock, storage down: prune removes it later
            log.warning("could not remove the uncommitted objects under %s: %s", prefix, exc)


def _refuse_unreadable(conn: psycopg.Connection[tuple[object, ...]], database: str) -> None:
    """Before anything is stored or pg_dump starts: what the login may not read, named
    with PostgreSQL's reason (pg/privileges.py)."""
    try:
        denied = unreadable_objects(conn)
    except psycopg.Error as exc:
        raise PostgresError(
            f"cannot check what {database} lets the login read: {first_line(exc)}"
        ) from None
    if denied:
        raise PostgresError(denial_message(conn.info.user, database, denied))


def backup_database(
    ctx: RunContext,
    params: ConnParams,
    database: str,
    jobs: int = 1,
    source: Source | None = None,
) -> DbManifest:
    """Back up one database; return its committed manifest. With ``jobs`` > 1, pg_dump's
    directory format with that many parallel workers.

    Whatever goes wrong from the moment the backup has a place in the repository until
    its manifest is written (pg_dump, the storage, a signal at any instant, even while
    the manifest is on its way), what it stored is removed: no backup, or a whole one."""
    started: list[str] = []  # the backup's prefix, once it has one
    source = source or configured_sources(ctx.config)[0]
    try:
        return _backup_database(ctx, params, database, jobs, source, started)
    except BaseException:
        for prefix in started:
            _remove_uncommitted(ctx, prefix)
        raise


def _backup_database(
    ctx: RunContext,
    params: ConnParams,
    database: str,
    jobs: int,
    source: Source,
    started: list[str],
) -> DbManifest:
    cfg = ctx.config
    db_params = params.with_db(database)
    started_at = utcnow()
    with db_params.connect(autocommit=True) as conn:
        version = server_version(conn)
        pg_dump = binaries.find_program(
            "pg_dump", binaries.major_version(version), bin_dir=source.postgres.bin_dir
        )
        size = _estimated_dump_size(conn)
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = conn.execute("SELECT pg_export_snapshot(), statement_timestamp()").fetchone()
        except psycopg.Error as exc:
            raise PostgresError(
                f"cannot export a snapshot of {database}: {first_line(exc)}"
            ) from None
        assert row is not None
        snapshot, created_at = as_text(row[0]), row[1]
        _refuse_unreadable(conn, database)
        assert isinstance(created_at, datetime)
        backup_id = new_id(created_at)
        prefix = backup_dir(database, backup_id, source.name)
        started.append(prefix)
        log.info(
            "backup of %s started",
            database,
            extra={
                "fields": {
                    "database": database,
                    "source": source.name,
                    "backup_id": backup_id,
                    "server_version": version,
                    "pg_dump": str(pg_dump.path),
                    "jobs": jobs,
                }
            },
        )
        try:
            inv = inventory(conn)
        except psycopg.Error as exc:
            raise PostgresError(
                f"cannot list the tables of {database}: {first_line(exc)}"
            ) from None
        digests = (
            digest_connections(size, cfg.backup.content_digest_jobs)
            if cfg.backup.content_digests
            else None
        )
        counter = _SnapshotFacts(conn, db_params, snapshot, inv, digests)
        counter.start()
        argv: list[str | Path] = [
            pg_dump.path,
            "--compress=0",
            f"--snapshot={snapshot}",
            "--no-password",
        ]
        if inv.in_recovery:  # a hot standby cannot read unlogged tables
            argv.append("--no-unlogged-table-data")
        env = db_params.child_env()
        try:
            if jobs > 1:
                result = _dump_directory(ctx, argv, env, prefix, database, jobs, size)
            else:
                result = _dump_custom(ctx, argv, env, prefix, database, size)
            tables, content, odoo = counter.outcome()
        finally:
            counter.join()
            # a connection the server dropped (the dump's failure says why) needs no
            # rollback: its error must not hide that one
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")
    finished_at = utcnow()
    manifest = DbManifest(
        schema_version=SCHEMA_VERSION,
        id=backup_id,
        source=source.name,
        database=database,
        created_at=created_at,
        started_at=started_at,
        finished_at=finished_at,
        object=DUMP_NAME if jobs <= 1 else DIRECTORY_PREFIX,
        format=CUSTOM_FORMAT if jobs <= 1 else DIRECTORY_FORMAT,
        objects=result.objects if jobs > 1 else [],
        compression={"algorithm": "zstd", "level": cfg.backup.compression_level},
        raw_size=result.raw_size,
        stored_size=result.stored_size,
        sha256=result.sha256,
        server_version=version,
        pg_dump_version=pg_dump.version,
        backdrill_version=__version__,
        run_id=ctx.run_id,
        host=ctx.host,
        tables=tables,
        odoo=odoo,
        roles=counter.roles,
        database_properties=counter.properties,
        content=content,
        not_dumped=[TableRef.model_validate({"schema": s, "name": n}) for s, n in inv.not_dumped],
    )
    document = manifest.to_json()
    keys = keys_for(cfg.storage.encryption)
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
                "seconds": round((finished_at - started_at).total_seconds(), 3),
            }
        },
    )
    return manifest


def backup_globals(ctx: RunContext, params: ConnParams, source: Source | None = None) -> str | None:
    """Roles and tablespaces (``pg_dumpall --globals-only --no-role-passwords``); a
    warning, not a failure, where the server does not permit it (managed PostgreSQL)."""
    cfg = ctx.config
    try:
        with params.connect() as conn:
            major = binaries.major_version(server_version(conn))
        bin_dir = source.postgres.bin_dir if source else cfg.postgres.bin_dir
        pg_dumpall = binaries.find_program("pg_dumpall", major, bin_dir=bin_dir)
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
    key = globals_key(new_id(), source.name if source else DEFAULT_SOURCE)
    ctx.storage.put_bytes(key, compressed(data))
    log.info("roles and tablespaces saved", extra={"fields": {"key": key}})
    return key


def run_backup_db(
    ctx: RunContext,
    *,
    database: str | None = None,
    all_databases: bool = False,
    wait: timedelta | None = None,
    jobs: int | None = None,
    parallel: int | None = None,
    source: str | None = None,
) -> list[DbBackupOutcome]:
    """Back up each selected database of each selected source (``source``: that one,
    else every configured one), ``parallel`` at once (backup -> parallel, 1: one after
    the other), each under its lock (``locks/db-<name>``) with its own manifest; a
    failure of one does not stop the others, nor does a source whose databases cannot
    be listed (its outcome has no database). Outcomes in the sources' and databases'
    order; each source's roles and tablespaces once, after all of them."""
    sources = select_sources(ctx.config, source, database)
    dump_jobs = jobs or ctx.config.backup.jobs
    work: list[tuple[Source, ConnParams, str]] = []
    unlisted: list[DbBackupOutcome] = []  # sources whose databases could not be listed
    for src in sources:
        params = ConnParams.from_config(src.postgres, ctx.config.security)
        try:
            names = resolve_databases(src, params, database, all_databases)
        except BackdrillError as exc:
            if len(sources) == 1:
                raise
            unlisted.append(DbBackupOutcome("", None, exc, src.name))
            continue
        work += [(src, params, name) for name in names]

    def one(item: tuple[Source, ConnParams, str]) -> DbBackupOutcome:
        src, params, name = item
        try:
            lock = RepoLock(
                ctx.storage,
                db_scope(name, src.name),
                run_id=ctx.run_id,
                command="backup db",
                wait=wait,
            )
            with lock:
                manifest = backup_database(ctx, params, name, dump_jobs, src)
                return DbBackupOutcome(name, manifest, None, src.name)
        except BackdrillError as exc:
            return DbBackupOutcome(name, None, exc, src.name)

    outcomes = run_bounded(work, parallel or ctx.config.backup.parallel, one) + unlisted
    failed_sources = {o.source for o in unlisted}
    if ctx.config.backup.globals:
        for src in [s for s in sources if s.name not in failed_sources]:
            if all_databases or src.postgres.databases == "all":
                backup_globals(ctx, ConnParams.from_config(src.postgres, ctx.config.security), src)
    return outcomes
