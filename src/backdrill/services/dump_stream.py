"""pg_dump -> zstd -> (age) -> sha256 -> storage: a custom-format dump streamed into one
object, or the directory format's files each stored once written; the size estimate
behind the progress bar; the removal of what an uncommitted backup stored."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, BinaryIO

import psycopg

from backdrill.pg.command import Child
from backdrill.pg.connection import first_line
from backdrill.pg.dumpdir import dump_directory
from backdrill.repository.crypto import EncryptingSink, keys_for
from backdrill.repository.layout import MANIFEST_NAME
from backdrill.repository.manifest import DIRECTORY_PREFIX, DUMP_NAME, StoredObject, tree_digest
from backdrill.repository.streams import (
    CountingReader,
    HashingSink,
    compress_stream,
    compression_threads,
)
from backdrill.runtime.interrupts import cleaning_up
from backdrill.runtime.progress import Advance
from backdrill.services.context import RunContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DumpResult:
    objects: list[StoredObject]
    raw_size: int
    stored_size: int
    sha256: str


def compress_into(
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
    """The progress of a dump, out of an estimate of its size (estimated_dump_size)."""
    return ctx.reporter.task(f"dump {database}", total=size or None, estimate=True)


def dump_custom(
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
        sink = compress_into(ctx, source, prefix + DUMP_NAME, before_commit=dump.check)
    obj = StoredObject(
        name=DUMP_NAME, raw_size=source.count, stored_size=sink.count, sha256=sink.hexdigest()
    )
    return DumpResult([obj], obj.raw_size, obj.stored_size, obj.sha256)


def dump_directory_format(
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
            sink = compress_into(ctx, source, key, before_commit=before_commit)
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


def estimated_dump_size(conn: psycopg.Connection[Any]) -> int | None:
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


def remove_uncommitted(ctx: RunContext, prefix: str) -> None:
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
