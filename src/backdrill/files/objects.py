"""Content-addressed objects: ``files/objects/<sha256[0:2]>/<sha256>``, each stored once,
zstd-compressed when that makes it smaller; in an encrypted repository
(``storage.encryption``) ``files/objects/<sha256[0:2]>/<sha256>.age`` instead, always
zstd-compressed then age-encrypted to the recipients (:class:`EncryptingSink`).

Writing: a file's bytes are spooled (in memory up to a few MB, then a temporary file)
while hashed; only a content the repository lacks is compressed and uploaded. Writing
needs the public keys only.
A small content (:func:`backdrill.files.packs.is_packable`) is not an object of its own:
its bytes, sealed the same way in memory, are appended to a pack
(:class:`~backdrill.files.packs.PackWriter`) and its entry names the pack and offset.
Reading (:class:`ObjectReader`): an object (or a pack's blob: ONE ranged read) is
streamed, decrypted, decompressed, counted and re-hashed; any difference from its entry
is an :class:`IntegrityError` naming the file. The identity is asked for only when an
encrypted object is met.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
import threading
from collections.abc import Callable, Iterable
from typing import IO, Any, cast

import zstandard

from backdrill.files.addrset import KeySet
from backdrill.files.packs import BlobIndex, Location, PackWriter, is_packable
from backdrill.files.snapshot import (
    ENCRYPTED_FORM,
    FileEntry,
    StoredForm,
    is_encrypted,
    object_key,
    stored_form,
)
from backdrill.repository.crypto import DecryptingReader, EncryptingSink, Keys, Sink
from backdrill.repository.layout import (
    ENCRYPTED_SUFFIX,
    FILES_OBJECTS_ROOT,
    pack_index_key,
    pack_key,
)
from backdrill.repository.limits import MAX_PACKED_BLOB_BYTES
from backdrill.repository.streams import CHUNK
from backdrill.repository.zstdio import BoundedReader, Readable, bounded_reader
from backdrill.runtime.errors import ConfigError, IntegrityError, NotFound
from backdrill.storage import Storage

SPOOL_IN_MEMORY = 2 * 1024 * 1024
#: contents stored last remembered by :meth:`ObjectStore.claim` (a bounded window)
RECENTLY_RELEASED = 4096
#: what -> the age identities (ConfigError when there is none)
IdentitiesProvider = Callable[[str], list[Any]]


def listed_objects(storage: Storage) -> dict[str, int]:
    """key -> stored size of every object under ``files/objects/``: ONE listing pass."""
    return {info.key: info.size for info in storage.list_objects(FILES_OBJECTS_ROOT)}


def _reusable_address(key: str, encrypted: bool) -> str | None:
    """Pure: the sha256 of the object ``key`` if a backup in this mode may reuse it."""
    form: StoredForm = ENCRYPTED_FORM if encrypted else "zstd"
    sha256 = key.rsplit("/", 1)[-1].removesuffix(ENCRYPTED_SUFFIX)
    return sha256 if len(sha256) == 64 and key == object_key(sha256, form) else None


def stored_objects(listed: dict[str, int], *, encrypted: bool) -> dict[str, int]:
    """Pure: sha256 -> stored size of the objects a backup in this mode may reuse, the
    ``.age`` ones when ``encrypted``, the plaintext ones otherwise (turning encryption
    on uploads every content again, encrypted)."""
    found: dict[str, int] = {}
    for key, size in listed.items():
        sha256 = _reusable_address(key, encrypted)
        if sha256 is not None:
            found[sha256] = size
    return found


def stored_index(storage: Storage, *, encrypted: bool) -> KeySet:
    """:func:`stored_objects` of ONE listing pass, streamed into a :class:`KeySet` (a
    temporary file, not memory: millions of objects)."""
    index = KeySet(addresses=True)
    try:
        index.add_many(
            (sha256, info.size)
            for info in storage.list_objects(FILES_OBJECTS_ROOT)
            if (sha256 := _reusable_address(info.key, encrypted)) is not None
        )
    except BaseException:
        index.close()
        raise
    return index


def new_spool() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, prefix="backdrill-")


class ObjectStore:
    """The objects of one repository during a backup: those listed at the start plus
    those uploaded since (``stored``: sha256 -> stored size, added to as it goes).
    Thread-safe; a content is claimed by one uploader only, and a reader of the same
    content meanwhile waits for it (:meth:`wait_stored`).
    With ``keys``, every content is stored encrypted (``age-zstd``). With ``packs`` and
    ``blobs``, a small content goes into a pack, and one already in a pack is found in
    ``blobs`` (loaded when first asked)."""

    def __init__(
        self,
        storage: Storage,
        stored: KeySet,
        *,
        level: int = 3,
        keys: Keys | None = None,
        packs: PackWriter | None = None,
        blobs: BlobIndex | None = None,
    ) -> None:
        self.storage = storage
        self.level = level
        self.keys = keys
        self.packs = packs
        self.blobs = blobs
        self._stored = stored
        self._claimed: dict[str, threading.Event] = {}
        #: the contents stored last (a bounded window): a claim looks a content up
        #: outside the lock, and one stored since is found here
        self._released: dict[str, None] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self.new_objects = 0
        self.new_bytes = 0
        self.uploaded_bytes = 0

    def claim(self, sha256: str, size: int) -> bool:
        """True if the caller must store this content; False if it is (being) stored.
        The lookup runs outside the lock (threads do not queue behind SQLite); a content
        stored between it and the claim is among the last ones released."""
        with self._lock:
            if sha256 in self._claimed:
                return False
        if self._locate(sha256, size) is not None:
            return False
        with self._lock:
            if sha256 in self._claimed or sha256 in self._released:
                return False
            self._claimed[sha256] = threading.Event()
            return True

    def _locate(self, sha256: str, size: int) -> Location | None:
        """A loose object first (a repository written before packs is reused as it is),
        then a pack's blob (the blob index is read when first needed)."""
        stored_size = self._stored.get(sha256)
        if stored_size is not None:
            return Location(stored_size, self.form_of(size, stored_size))
        if self.blobs is not None and is_packable(size):
            return self.blobs.get(sha256)
        return None

    def wait_stored(self, sha256: str, size: int) -> Location | None:
        """Where a content claimed by another reader lies, once stored; None when its
        upload failed (the caller claims it again)."""
        while True:
            with self._lock:
                pending = self._claimed.get(sha256)
            if pending is None:  # stored (then released) or failed
                return self._locate(sha256, size)
            pending.wait()

    def form_of(self, raw_size: int, stored_size: int) -> StoredForm:
        return stored_form(raw_size, stored_size, encrypted=self.keys is not None)

    def store(self, sha256: str, raw: IO[bytes], raw_size: int) -> Location:
        """Store the claimed content ``raw`` (positioned anywhere): into a pack when it
        is small (and packs are on), else as an object under its address."""
        raw.seek(0)
        stored: Location | None = None
        try:
            if self.packs is not None and self.blobs is not None and is_packable(raw_size):
                blob, form = self.seal(raw.read())
                stored = self.packs.add(sha256, blob, form, raw_size)
                self.blobs.add(sha256, stored)
            else:
                if self.keys is not None:
                    stored = self._upload_encrypted(sha256, raw, raw_size, self.keys)
                else:
                    stored = self._upload_plain(sha256, raw, raw_size)
                self._stored.add(sha256, stored.stored_size)
        finally:
            with self._lock:
                pending = self._claimed.pop(sha256, None)
                if stored is not None:
                    self._released[sha256] = None
                    if len(self._released) > RECENTLY_RELEASED:
                        del self._released[next(iter(self._released))]
                    self.new_objects += 1
                    self.new_bytes += raw_size
                    self.uploaded_bytes += stored.stored_size
            if pending is not None:
                pending.set()
        return stored

    def seal(self, data: bytes) -> tuple[bytes, StoredForm]:
        """A small content as a loose object of it would hold it, in memory."""
        if self.keys is not None:
            out = io.BytesIO()
            sealed = EncryptingSink(out, self.keys)
            sealed.write(self._compressor().compress(data))
            sealed.close()
            return out.getvalue(), ENCRYPTED_FORM
        packed = self._compressor().compress(data)
        return (packed, "zstd") if len(packed) < len(data) else (data, "raw")

    def _compressor(self) -> zstandard.ZstdCompressor:
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:  # a zstd context per thread: creating one is costly
            compressor = zstandard.ZstdCompressor(level=self.level, write_checksum=True)
            self._local.compressor = compressor
        return cast(zstandard.ZstdCompressor, compressor)

    def _compress(self, raw: IO[bytes], raw_size: int, out: Sink) -> None:
        compressor = self._compressor()
        if raw_size <= SPOOL_IN_MEMORY:
            out.write(compressor.compress(raw.read()))
        else:
            compressor.copy_stream(raw, cast(IO[bytes], out), read_size=CHUNK, write_size=CHUNK)

    def _upload_plain(self, sha256: str, raw: IO[bytes], raw_size: int) -> Location:
        """zstd when that is smaller, else the bytes as they are."""
        with new_spool() as packed:
            self._compress(raw, raw_size, packed)
            packed_size = packed.tell()
            form = stored_form(raw_size, packed_size)
            body = packed if form == "zstd" else raw
            body.seek(0)
            with self.storage.open_writer(object_key(sha256, form)) as writer:
                while chunk := body.read(CHUNK):
                    writer.write(chunk)
        return Location(packed_size if body is packed else raw_size, form)

    def _upload_encrypted(self, sha256: str, raw: IO[bytes], raw_size: int, keys: Keys) -> Location:
        """zstd, then age frames, streamed straight into the object (no second spool)."""
        with self.storage.open_writer(object_key(sha256, ENCRYPTED_FORM)) as writer:
            sealed = EncryptingSink(writer, keys)
            self._compress(raw, raw_size, sealed)
            sealed.close()
            size = writer.bytes_written
        return Location(size, ENCRYPTED_FORM)


def entry_key(entry: FileEntry) -> str:
    """The key of the object holding the content of ``entry``: its pack, or its own."""
    if entry.pack is not None:
        return pack_key(entry.pack)
    assert entry.sha256 is not None
    return object_key(entry.sha256, entry.stored)


def blob_ref(entry: FileEntry) -> str:
    """What stores the content of ``entry``, one name per stored content (``verify``
    checks each once): its object's key, or its pack's key and ``@offset``."""
    if entry.pack is not None:
        return f"{pack_key(entry.pack)}@{entry.offset}"
    return entry_key(entry)


def entry_refs(entry: FileEntry) -> tuple[str, ...]:
    """The keys a kept entry keeps (prune): its object, or its pack and the pack's index."""
    if entry.pack is not None:
        return pack_key(entry.pack), pack_index_key(entry.pack)
    return (entry_key(entry),)


class ObjectReader:
    """Reads the content objects of one repository. ``identities`` is called at most
    once, and only when an encrypted object is met: a clear repository (or a backup)
    never needs the identity. Thread-safe."""

    def __init__(self, storage: Storage, identities: IdentitiesProvider | None = None) -> None:
        self.storage = storage
        self._provider = identities
        self._identities: list[Any] | None = None
        self._lock = threading.Lock()

    def identities(self, what: str) -> list[Any]:
        with self._lock:
            if self._identities is None:
                if self._provider is None:
                    raise ConfigError(f"{what} is encrypted and no identity is configured")
                self._identities = self._provider(what)
            return self._identities

    def check_identity(self, entries: Iterable[FileEntry]) -> None:
        """Before anything is written: read the smallest encrypted object, so that a
        missing or wrong identity is a ConfigError now, not after the first files. A
        damaged object is left to the caller, who reads it again and names it."""
        encrypted = [e for e in entries if e.sha256 is not None and is_encrypted(e.stored)]
        if encrypted:
            with contextlib.suppress(IntegrityError):
                self.copy(min(encrypted, key=lambda e: e.stored_size or 0), _discard)

    def copy(
        self,
        entry: FileEntry,
        sink: Callable[[bytes], object],
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        """Stream the content of ``entry`` into ``sink``, verifying the stored size, the
        size and the sha256 of the content. IntegrityError naming the file when anything
        differs (a tampered encrypted object fails authentication); ConfigError when
        the identity is missing or wrong."""
        where = f"file {entry.path}"
        if entry.pack is not None:
            label = f"pack {pack_key(entry.pack)} (offset {entry.offset})"
            stream: IO[bytes] = io.BytesIO(self._blob(entry, where))
        else:
            key = entry_key(entry)
            label = f"object {key}"
            try:
                stream = self.storage.open_reader(key)
            except NotFound:
                raise IntegrityError(f"{where}: {label} is missing from the repository") from None
        with stream:
            # never more than the snapshot records: not from the store, nor decompressed
            stored_limit = entry.stored_size if entry.stored_size is not None else entry.size
            counted = bounded_reader(
                stream, limit=stored_limit, what=f"{where}: {label}", zstd=False
            )
            source, decrypting = self._layers(entry, label, counted)
            size, digest = _pump(source, sink, on_bytes)
            if decrypting is not None and decrypting.read():  # reads to the end: finish()
                raise IntegrityError(f"{where}: {label} has data after its content")
        if entry.stored_size is not None and counted.count != entry.stored_size:
            raise IntegrityError(
                f"{where}: {label} has {counted.count} bytes, expected {entry.stored_size}"
            )
        if size != entry.size or digest != entry.sha256:
            raise IntegrityError(f"{where}: content of {label} does not match its sha256")

    def _blob(self, entry: FileEntry, where: str) -> bytes:
        """The stored bytes of a packed entry: ONE ranged read of its pack, as long as
        the entry says (within :data:`MAX_PACKED_BLOB_BYTES`), or an IntegrityError."""
        assert entry.pack is not None
        key = pack_key(entry.pack)
        offset, length = entry.offset, entry.stored_size
        if offset is None or length is None or not 0 <= length <= MAX_PACKED_BLOB_BYTES:
            raise IntegrityError(f"{where}: pack {key}: the entry's offset or stored size is bad")
        try:
            data = self.storage.read_range(key, offset, length)
        except NotFound:
            raise IntegrityError(f"{where}: pack {key} is missing from the repository") from None
        if len(data) != length:
            raise IntegrityError(
                f"{where}: pack {key} ends before the blob at offset {offset} "
                f"({len(data)} of {length} bytes)"
            )
        return data

    def _layers(
        self, entry: FileEntry, label: str, counted: BoundedReader
    ) -> tuple[BoundedReader, DecryptingReader | None]:
        """The plaintext of the object: decrypted and decompressed as its form needs,
        never more than the size the snapshot records (:func:`bounded_reader`)."""
        what = f"file {entry.path}: {label}"
        source: Readable = counted
        decrypting = None
        if is_encrypted(entry.stored):
            decrypting = DecryptingReader(
                cast(IO[bytes], source), self.identities(f"file {entry.path}"), what
            )
            source = decrypting
        zstd = entry.stored in ("zstd", ENCRYPTED_FORM)
        return bounded_reader(source, limit=entry.size, what=what, zstd=zstd), decrypting


def _pump(
    source: BoundedReader,
    sink: Callable[[bytes], object],
    on_bytes: Callable[[int], None] | None,
) -> tuple[int, str]:
    """Copy ``source`` into ``sink``: the size and sha256 of what went through."""
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        sink(chunk)
        if on_bytes is not None:
            on_bytes(len(chunk))
    return size, digest.hexdigest()


def _discard(_chunk: bytes) -> None:
    pass
