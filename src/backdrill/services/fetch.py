"""Read the repository: download a database backup to local disk (every object's sha256
verified while streaming, decrypted when the repository is encrypted and
zstd-decompressed on the fly, never past the sizes the manifest records; a mismatch, a
short object, a corrupt frame or a decompression bomb is an IntegrityError and the
partial file is removed), and the identity that readers of encrypted backups and
filestore objects need."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from backdrill.config.model import Config
from backdrill.files.objects import ObjectReader
from backdrill.pg.dumpindex import DumpIndexer
from backdrill.repository.crypto import IDENTITY_ENV, DecryptingReader, Keys, Sink, unseal_fields
from backdrill.repository.layout import backup_object_key
from backdrill.repository.manifest import DIRECTORY_PREFIX, DbManifest, StoredObject
from backdrill.repository.streams import CHUNK
from backdrill.repository.zstdio import Readable, bounded_reader
from backdrill.runtime.errors import ConfigError, IntegrityError, StorageError
from backdrill.runtime.progress import Advance, NullReporter, Reporter
from backdrill.storage import Storage

log = logging.getLogger(__name__)
#: bytes kept from the end of a dump: where its last data block must end
TAIL = 64


def object_key(manifest: DbManifest, obj: StoredObject) -> str:
    return backup_object_key(manifest.database, manifest.id, obj.name, manifest.source)


def dump_key(manifest: DbManifest) -> str:
    return object_key(manifest, manifest.stored_objects()[0])


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


def object_reader(config: Config, storage: Storage) -> ObjectReader:
    """The reader of filestore objects: it reads the identity only if it meets an
    encrypted object (restore files, verify --read-data, the drill's filestore)."""
    return ObjectReader(storage, functools.partial(identities_for, config))


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


def fetch_object(
    storage: Storage,
    key: str,
    obj: StoredObject,
    dest: Path,
    advance: Advance,
    identities: list[Any] | None = None,
    *,
    index: bool = False,
) -> None:
    """Write the decompressed object to ``dest``, verifying sha256 and both sizes; never
    more than the sizes the manifest records are read or written (:func:`bounded_reader`:
    a decompression bomb stops at ``raw_size``). ``identities``: the object is encrypted.
    ``index``: the object is a custom-format dump; give it the data offsets pg_dump
    could not write to a pipe (:mod:`backdrill.pg.dumpindex`)."""
    what = f"object {key}"
    try:  # w+b: the indexer reads back the tail of the dump it watched
        with storage.open_reader(key) as stream, dest.open("w+b") as out:
            stored = _HashingReader(
                bounded_reader(stream, limit=obj.stored_size, what=what, zstd=False), advance
            )
            source: Readable = stored
            if identities is not None:
                source = DecryptingReader(cast(IO[bytes], stored), identities, key)
            plain = bounded_reader(source, limit=obj.raw_size, what=what)
            indexing = _IndexingFile(out) if index else None
            target: Sink = indexing if indexing is not None else out
            while chunk := plain.read(CHUNK):
                target.write(chunk)
            while source.read(CHUNK):  # to the end: all the bytes the sha256 covers
                pass
            _check_object(key, obj, stored.count, stored.hexdigest(), raw=plain.count)
            if indexing is not None:
                indexing.apply_offsets()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()
        raise


class _HashingReader:
    """The stored bytes on their way in: hashed, counted, reported as progress."""

    def __init__(self, source: Readable, advance: Advance) -> None:
        self._source = source
        self._advance = advance
        self._hash = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        if data:
            self._hash.update(data)
            self.count += len(data)
            self._advance(len(data))
        return data

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _check_object(key: str, obj: StoredObject, stored: int, sha256: str, raw: int) -> None:
    if stored != obj.stored_size:
        raise IntegrityError(
            f"checksum mismatch: {key} is {stored} bytes, the manifest records "
            f"{obj.stored_size} (truncated or replaced)"
        )
    if sha256 != obj.sha256:
        raise IntegrityError(
            f"checksum mismatch: {key} has sha256 {sha256}, the manifest records {obj.sha256}"
        )
    if raw != obj.raw_size:
        raise IntegrityError(
            f"{key} decompressed to {raw} bytes; the manifest records {obj.raw_size}"
        )


class _IndexingFile:
    """The dump file being written, watched by a :class:`DumpIndexer`."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._indexer = DumpIndexer()

    def write(self, data: bytes) -> int:
        self._indexer.feed(data)
        return self._out.write(data)

    def apply_offsets(self) -> None:
        self._out.flush()
        size = self._out.tell()
        tail = os.pread(self._out.fileno(), TAIL, max(0, size - TAIL))
        patches = self._indexer.patches(size, tail)
        for position, data in patches:
            os.pwrite(self._out.fileno(), data, position)
        if patches:
            log.info("dump indexed: %d data blocks located for parallel restore", len(patches))
        else:
            log.info("dump not indexed (%s): pg_restore scans it", self._indexer.why)


def fetch_backup(
    storage: Storage,
    manifest: DbManifest,
    workdir: Path,
    reporter: Reporter | None = None,
    config: Config | None = None,
) -> Path:
    """Download every object of ``manifest`` under ``workdir``; return what pg_restore
    reads: the dump file, or the dump directory of a ``--jobs`` backup."""
    ensure_free_space(workdir, manifest.raw_size)
    if manifest.encrypted and config is None:
        raise ConfigError(f"backup {manifest.id} is encrypted; no identity was given")

    def decryptor(key: str) -> list[Any] | None:
        if not manifest.encrypted:
            return None
        assert config is not None
        return identities_for(config, key)

    with (reporter or NullReporter()).task(
        f"download {manifest.database}", total=manifest.stored_size
    ) as advance:
        if not manifest.is_directory:
            dump = workdir / "dump.pgdump"
            key = dump_key(manifest)
            obj = manifest.stored_objects()[0]
            fetch_object(storage, key, obj, dump, advance, decryptor(key), index=True)
            return dump
        directory = workdir / "dump.d"
        directory.mkdir()
        for obj in manifest.stored_objects():
            key = object_key(manifest, obj)
            name = obj.name.removeprefix(DIRECTORY_PREFIX).removesuffix(".zst")
            fetch_object(storage, key, obj, directory / name, advance, decryptor(key))
        return directory
