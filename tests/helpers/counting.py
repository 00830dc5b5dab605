"""A real Storage, wrapped to count how often it is listed, and what is read."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any, BinaryIO

from backdrill.storage.base import (
    Capabilities,
    ObjectInfo,
    ObjectWriter,
    PendingUpload,
    ProbeResult,
    Storage,
)


class CountingStorage(Storage):
    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.url = inner.url
        self.listings: Counter[str] = Counter()
        #: key -> how many reads (whole objects and ranges alike)
        self.reads: Counter[str] = Counter()
        #: bytes read through ranges; whole objects read through open_reader are
        #: counted in ``whole_reads``
        self.range_bytes = 0
        self.whole_reads: Counter[str] = Counter()
        self._lock = threading.Lock()

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._lock:
            self.listings[prefix] += 1
        return self.inner.list_objects(prefix)

    def open_writer(self, key: str) -> ObjectWriter:
        return self.inner.open_writer(key)

    def put_bytes(self, key: str, data: bytes, **options: Any) -> None:
        self.inner.put_bytes(key, data, **options)

    def capabilities(self) -> Capabilities:
        return self.inner.capabilities()

    def open_reader(self, key: str) -> BinaryIO:
        with self._lock:
            self.reads[key] += 1
            self.whole_reads[key] += 1
        return self.inner.open_reader(key)

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        data = self.inner.read_range(key, offset, length)
        with self._lock:
            self.reads[key] += 1
            self.range_bytes += len(data)
        return data

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def pending_uploads(self, prefix: str = "") -> list[PendingUpload]:
        return self.inner.pending_uploads(prefix)

    def abort_pending(self, upload: PendingUpload) -> None:
        self.inner.abort_pending(upload)

    def probe(self) -> list[ProbeResult]:
        return self.inner.probe()
