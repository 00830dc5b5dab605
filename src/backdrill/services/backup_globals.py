"""Roles and tablespaces of a PostgreSQL source, once per ``backup db`` run."""

from __future__ import annotations

import logging
from pathlib import Path

from backdrill.config.sources import Source
from backdrill.pg import binaries
from backdrill.pg.command import Child
from backdrill.pg.connection import ConnParams, server_version
from backdrill.repository.layout import DEFAULT_SOURCE, globals_key
from backdrill.repository.zstdio import compressed
from backdrill.runtime.errors import PostgresError
from backdrill.runtime.timeutil import new_id
from backdrill.services.context import RunContext

log = logging.getLogger(__name__)


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
