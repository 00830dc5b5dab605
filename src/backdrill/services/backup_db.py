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
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import psycopg

from backdrill import __version__
from backdrill.config.model import Config
from backdrill.config.sources import Source, configured_sources, find_source
from backdrill.pg import binaries
from backdrill.pg.connection import (
    ConnParams,
    as_text,
    first_line,
    list_databases,
    server_version,
)
from backdrill.pg.content import (
    digest_connections,
    inventory,
)
from backdrill.repository.crypto import keys_for, seal_fields
from backdrill.repository.digests import TableRef
from backdrill.repository.layout import DEFAULT_SOURCE, MANIFEST_NAME, backup_dir
from backdrill.repository.locks import RepoLock, db_scope
from backdrill.repository.manifest import (
    CUSTOM_FORMAT,
    DIRECTORY_FORMAT,
    DIRECTORY_PREFIX,
    DUMP_NAME,
    SCHEMA_VERSION,
    DbManifest,
)
from backdrill.runtime.errors import BackdrillError, PostgresError, UsageError
from backdrill.runtime.text import terminal
from backdrill.runtime.timeutil import new_id, utcnow
from backdrill.services.backup_globals import backup_globals
from backdrill.services.context import RunContext
from backdrill.services.dump_stream import (
    dump_custom,
    dump_directory_format,
    estimated_dump_size,
    remove_uncommitted,
)
from backdrill.services.parallel import run_bounded
from backdrill.services.snapshot_facts import SnapshotFacts, refuse_unreadable

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
            remove_uncommitted(ctx, prefix)
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
        size = estimated_dump_size(conn)
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # binary: the moment is read whatever the database's DateStyle ('SQL, DMY')
            row = conn.execute(
                "SELECT pg_export_snapshot(), statement_timestamp()", binary=True
            ).fetchone()
        except psycopg.Error as exc:
            raise PostgresError(
                f"cannot export a snapshot of {database}: {first_line(exc)}"
            ) from None
        assert row is not None
        snapshot, created_at = as_text(row[0]), row[1]
        refuse_unreadable(conn, database)
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
        counter = SnapshotFacts(conn, db_params, snapshot, inv, digests)
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
                result = dump_directory_format(ctx, argv, env, prefix, database, jobs, size)
            else:
                result = dump_custom(ctx, argv, env, prefix, database, size)
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
    order; each source's roles and tablespaces once, queued after all of them."""
    sources = select_sources(ctx.config, source, database)
    dump_jobs = jobs or ctx.config.backup.jobs
    work: list[tuple[Source, ConnParams, str]] = []
    unlisted: list[DbBackupOutcome] = []  # sources whose databases could not be listed
    roles_of: list[tuple[Source, ConnParams, None]] = []  # sources whose globals are saved
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
        if ctx.config.backup.globals and (all_databases or src.postgres.databases == "all"):
            roles_of.append((src, params, None))

    def one(item: tuple[Source, ConnParams, str | None]) -> DbBackupOutcome | None:
        src, params, name = item
        if name is None:  # the source's roles and tablespaces: its failure is the run's
            backup_globals(ctx, params, src)
            return None
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

    # the globals queued after every database: with parallel > 1 they run beside the
    # last databases' backups, not after them
    queue: list[tuple[Source, ConnParams, str | None]] = [*work, *roles_of]
    outcomes = run_bounded(queue, parallel or ctx.config.backup.parallel, one)
    return [o for o in outcomes if o is not None] + unlisted
