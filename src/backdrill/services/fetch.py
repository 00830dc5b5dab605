"""Download a database backup to a local file: sha256 verified while streaming, zstd
decompressed on the fly. A mismatch, a short object or a corrupt frame is an
IntegrityError and the partial file is removed."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import zstandard

from backdrill.catalog import backup_dir
from backdrill.config import Config
from backdrill.crypto import IDENTITY_ENV, Decryptor, Keys, unseal_fields
from backdrill.errors import ConfigError, IntegrityError, StorageError
from backdrill.manifest import DbManifest
from backdrill.progress import NullReporter, Reporter
from backdrill.storage import Storage
from backdrill.streams import CHUNK


def dump_key(manifest: DbManifest) -> str:
    return f"{backup_dir(manifest.database, manifest.id)}{manifest.object}"


def ensure_free_space(directory: Path, needed: int) -> None:
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise StorageError(
            f"not enough disk space in {directory}: the dump needs {needed} bytes, {free} are free",
            hint="set drill -> work_dir to a larger filesystem",
        )


def identities_for(config: Config, what: str) -> list[Any]:
    """The age identity for reading encrypted backups (ConfigError when missing)."""
    enc = config.storage.encryption
    keys = Keys.from_config(enc) if enc is not None else Keys([], None, None)
    if keys.identity_source is None and os.environ.get(IDENTITY_ENV):
        keys = Keys(keys.recipients, IDENTITY_ENV, None)
    return keys.identities(what)


def readable_manifest(config: Config, manifest: DbManifest) -> DbManifest:
    """The manifest with its sealed fields (tables, Odoo facts) decrypted: what a
    restore or a drill compares against. ConfigError (exit 3) on a missing or wrong
    identity, before anything is provisioned or downloaded."""
    if not manifest.encrypted:
        return manifest
    what = f"backup {manifest.id}"
    doc = unseal_fields(
        manifest.model_dump(by_alias=True, mode="json"), identities_for(config, what), what
    )
    return DbManifest.model_validate(doc)


def fetch_dump(
    storage: Storage,
    manifest: DbManifest,
    dest: Path,
    reporter: Reporter | None = None,
    config: Config | None = None,
) -> None:
    """Write the decompressed (and decrypted) dump of ``manifest`` to ``dest``,
    verifying it."""
    key = dump_key(manifest)
    ensure_free_space(dest.parent, manifest.raw_size)
    decryptor = None
    if manifest.encrypted:
        if config is None:
            raise ConfigError(f"backup {manifest.id} is encrypted; no identity was given")
        decryptor = Decryptor(identities_for(config, key), key)
    digest = hashlib.sha256()
    stored = 0
    dctx = zstandard.ZstdDecompressor()
    try:
        with (
            (reporter or NullReporter()).task(
                f"download {manifest.database}", total=manifest.stored_size
            ) as advance,
            storage.open_reader(key) as source,
            dest.open("wb") as out,
        ):
            writer = dctx.stream_writer(out, closefd=False)
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                stored += len(chunk)
                try:
                    writer.write(decryptor.feed(chunk) if decryptor is not None else chunk)
                except zstandard.ZstdError as exc:
                    raise IntegrityError(
                        f"{key} is corrupt ({exc}): the stored object does not match its manifest"
                    ) from None
                advance(len(chunk))
            if decryptor is not None:
                decryptor.finish()
            writer.flush()  # type: ignore[no-untyped-call]
        actual = digest.hexdigest()
        if stored != manifest.stored_size or actual != manifest.sha256:
            raise _mismatch(key, manifest, stored, actual)
        raw = dest.stat().st_size
        if raw != manifest.raw_size:
            raise IntegrityError(
                f"{key} decompressed to {raw} bytes; the manifest records {manifest.raw_size}"
            )
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()
        raise


def _mismatch(key: str, manifest: DbManifest, stored: int, actual: str | None) -> IntegrityError:
    if stored != manifest.stored_size:
        return IntegrityError(
            f"checksum mismatch: {key} is {stored} bytes, the manifest records "
            f"{manifest.stored_size} (truncated or replaced)"
        )
    return IntegrityError(
        f"checksum mismatch: {key} has sha256 {actual}, the manifest records {manifest.sha256}"
    )
