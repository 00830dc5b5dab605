"""Packs: many small filestore contents in one object (docs/format.md, schema_version 3).

``files/packs/<xx>/<pack id>`` holds blobs one after another, each byte for byte what a
loose object of that content holds (zstd frame, raw bytes, or age frames of its own:
one blob decrypts alone); no header. Its index ``files/packs/<xx>/<pack id>.index``,
written right after it, is a zstd JSON document naming every blob (sha256, stored
form, offset, stored size, size). A pack is written whole with one ``put_bytes``: one
fsync (local) or one PUT (S3) for thousands of files. A pack without its index (a
crash between the two writes) is referenced by nothing and swept by prune.

Every index read is hostile: bounded (:data:`~backdrill.repository.limits.MAX_PACK_INDEX_BYTES`),
parsed strictly, its ``pack`` the id of its key, its blobs contiguous from 0 to ``size``.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backdrill.files.addrset import KeySet
from backdrill.files.snapshot import SHA256_PATTERN, StoredForm, is_encrypted
from backdrill.repository.documents import read_document
from backdrill.repository.layout import FILES_PACKS_ROOT, pack_index_key, pack_key, split_pack_key
from backdrill.repository.limits import MAX_PACK_INDEX_BYTES
from backdrill.repository.zstdio import compressed, decompressed
from backdrill.runtime.errors import IntegrityError, NotFound
from backdrill.storage import Storage

log = logging.getLogger(__name__)

#: a content of at most this many bytes (and at least one) goes into a pack; larger
#: ones stay loose objects (``files/objects/``)
PACK_BLOB_MAX = 512 * 1024
#: a pack is closed (and written) once it holds this many bytes
PACK_TARGET = 8 * 1024 * 1024
#: full packs being written at once while the next one fills
PACKS_IN_FLIGHT = 2


def is_packable(size: int) -> bool:
    """Pure: whether a content of ``size`` bytes is packed (an empty one stays loose)."""
    return 0 < size <= PACK_BLOB_MAX


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PackBlob(_Strict):
    sha256: str = Field(pattern=SHA256_PATTERN)
    stored: StoredForm
    offset: int = Field(ge=0)
    stored_size: int = Field(ge=0)
    size: int = Field(ge=0)


class PackIndex(_Strict):
    kind: Literal["files-pack-index"] = "files-pack-index"
    pack: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(ge=0)
    blobs: list[PackBlob]


@dataclass(frozen=True)
class Location:
    """Where a stored content lies: a loose object (``pack`` None) or a blob of a pack."""

    stored_size: int
    form: StoredForm | None = None
    pack: str | None = None
    offset: int | None = None


def check_index(index: PackIndex, pack_id: str) -> None:
    """IntegrityError unless ``index`` is the index of ``pack_id``, its blobs contiguous
    from 0 and ending at its ``size``."""
    key = pack_index_key(pack_id)
    if index.pack != pack_id:
        raise IntegrityError(f"pack index {key} names pack {index.pack}")
    end = 0
    for blob in index.blobs:
        if blob.offset != end:
            raise IntegrityError(
                f"pack index {key}: blob {blob.sha256} at offset {blob.offset}, expected {end}"
            )
        end += blob.stored_size
    if end != index.size:
        raise IntegrityError(f"pack index {key}: blobs end at {end}, the pack has {index.size}")


def read_pack_index(storage: Storage, pack_id: str) -> PackIndex:
    """The checked index of ``pack_id``; IntegrityError naming it otherwise (NotFound
    when there is none)."""
    key = pack_index_key(pack_id)
    raw = decompressed(
        read_document(storage, key, limit=MAX_PACK_INDEX_BYTES),
        f"pack index {key}",
        limit=MAX_PACK_INDEX_BYTES,
    )
    try:
        index = PackIndex.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = " -> ".join(str(p) for p in err["loc"])
        raise IntegrityError(f"pack index {key}: {loc}: {err['msg']}") from None
    check_index(index, pack_id)
    return index


@dataclass(frozen=True)
class PackListing:
    """ONE listing of ``files/packs/``: pack id -> stored size, and the ids with an index."""

    sizes: Mapping[str, int]
    indexed: frozenset[str]


def list_packs(storage: Storage) -> PackListing:
    sizes: dict[str, int] = {}
    indexed: set[str] = set()
    for info in storage.list_objects(FILES_PACKS_ROOT):
        split = split_pack_key(info.key)
        if split is None:
            continue
        if split[1]:
            indexed.add(split[0])
        else:
            sizes[split[0]] = info.size
    return PackListing(sizes, frozenset(indexed))


class _OpenPack:
    def __init__(self) -> None:
        self.id = secrets.token_hex(32)
        self.parts: list[bytes] = []
        self.blobs: list[dict[str, object]] = []
        self.size = 0

    def append(self, sha256: str, blob: bytes, form: StoredForm, raw_size: int) -> int:
        offset = self.size
        self.parts.append(blob)
        self.blobs.append(
            {
                "sha256": sha256,
                "stored": form,
                "offset": offset,
                "stored_size": len(blob),
                "size": raw_size,
            }
        )
        self.size += len(blob)
        return offset

    def index_bytes(self) -> bytes:
        doc = {"kind": "files-pack-index", "pack": self.id, "size": self.size, "blobs": self.blobs}
        return compressed(json.dumps(doc, separators=(",", ":")).encode())


class PackWriter:
    """Appends blobs to the open pack; a full pack is handed to a writer thread (pack,
    then its index), at most :data:`PACKS_IN_FLIGHT` at once, so that the readers go on
    while it is uploaded: memory holds the open pack and those being written.
    Thread-safe. :meth:`finish` writes the last one and waits for every write (the first
    failure is raised, there or by a later :meth:`add`); :meth:`close` stops the writer
    threads after a failure elsewhere."""

    def __init__(self, storage: Storage, target: int = PACK_TARGET) -> None:
        self.storage = storage
        self.target = target
        self.packs_written = 0
        self._open: _OpenPack | None = None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(PACKS_IN_FLIGHT)
        self._writers = ThreadPoolExecutor(PACKS_IN_FLIGHT, thread_name_prefix="packs")
        #: the first write that failed, raised by the next add and by finish
        self._failure: BaseException | None = None

    def add(self, sha256: str, blob: bytes, form: StoredForm, raw_size: int) -> Location:
        with self._lock:
            if self._open is None:
                self._open = _OpenPack()
            pack = self._open
            offset = pack.append(sha256, blob, form, raw_size)
            full = pack.size >= self.target
            if full:
                self._open = None
        if full:
            self._submit(pack)
        return Location(len(blob), form, pack.id, offset)

    def _submit(self, pack: _OpenPack) -> None:
        self._slots.acquire()  # waits while PACKS_IN_FLIGHT packs are being written
        try:
            self._raise_failure()
            future = self._writers.submit(self._write, pack)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._written)

    def _written(self, write: Future[None]) -> None:
        error = None if write.cancelled() else write.exception()
        if error is not None:
            with self._lock:
                self._failure = self._failure or error
        self._slots.release()  # after: the next submit sees the failure

    def _raise_failure(self) -> None:
        with self._lock:
            failure = self._failure
        if failure is not None:
            raise failure

    def finish(self) -> None:
        """Write the last pack, then wait for every pack's write."""
        with self._lock:
            pack, self._open = self._open, None
        if pack is not None:
            self._submit(pack)
        self._writers.shutdown(wait=True)
        self._raise_failure()

    def close(self) -> None:
        self._writers.shutdown(wait=True, cancel_futures=True)

    def _write(self, pack: _OpenPack) -> None:
        data = b"".join(pack.parts)
        pack.parts.clear()  # one copy of the pack in memory while it is written, not two
        self.storage.put_bytes(pack_key(pack.id), data)
        del data
        self.storage.put_bytes(pack_index_key(pack.id), pack.index_bytes())
        with self._lock:
            self.packs_written += 1


class BlobIndex:
    """sha256 -> :class:`Location` of the blobs a backup in this mode (encrypted or not)
    may reuse: built from the ``.index`` of every listed pack, on disk (a
    :class:`KeySet`), and only when first asked (an unchanged night reads no index).
    An index that cannot be read, or disagrees with its pack's size, is left out (its
    blobs are stored again) with a warning. Thread-safe."""

    def __init__(self, storage: Storage, packs: PackListing, *, encrypted: bool) -> None:
        self.storage = storage
        self.packs = packs
        self.encrypted = encrypted
        self._set: KeySet | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> KeySet:
        with self._lock:
            if self._set is None:
                found = KeySet(addresses=True)
                try:
                    for pack_id in sorted(self.packs.indexed):
                        found.add_noted(self._blobs_of(pack_id))
                except BaseException:
                    found.close()
                    raise
                self._set = found
            return self._set

    def _blobs_of(self, pack_id: str) -> list[tuple[str, int, str]]:
        size = self.packs.sizes.get(pack_id)
        if size is None:
            return []
        try:
            index = read_pack_index(self.storage, pack_id)
        except (IntegrityError, NotFound) as exc:
            log.warning("pack %s not reused: %s", pack_id, exc)
            return []
        if index.size != size:
            log.warning(
                "pack %s not reused: %d bytes, its index says %d", pack_id, size, index.size
            )
            return []
        return [
            (b.sha256, b.stored_size, f"{pack_id}:{b.offset}:{b.stored}")
            for b in index.blobs
            if is_encrypted(b.stored) == self.encrypted
        ]

    def get(self, sha256: str) -> Location | None:
        found = self._loaded().get_noted(sha256)
        if found is None:
            return None
        stored_size, note = found
        pack_id, offset, form = note.split(":")
        return Location(stored_size, _form(form), pack_id, int(offset))

    def add(self, sha256: str, location: Location) -> None:
        note = f"{location.pack}:{location.offset}:{location.form}"
        self._loaded().add(sha256, location.stored_size, note)

    def close(self) -> None:
        with self._lock:
            if self._set is not None:
                self._set.close()
                self._set = None


def _form(text: str) -> StoredForm:
    for form in get_args(StoredForm):
        if text == form:
            return cast(StoredForm, form)
    raise ValueError(f"unknown stored form {text!r}")
