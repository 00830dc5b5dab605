"""Reading S3 objects: a small object as one GET whose body resumes where it broke off
(:class:`ResumingBody`); a large one as ranged GETs fetched concurrently, in order, at
most ``max_concurrency`` ranges in memory (:class:`RangeReader`). Every GET goes through
the request wrapper (:mod:`backdrill.storage.s3_requests`)."""

from __future__ import annotations

import collections
import contextlib
import io
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, cast

from backdrill.runtime.errors import NotFound, StorageError
from backdrill.storage.s3_errors import (
    BOTO_ERRORS,
    MISSING_KEY,
    RequestFailed,
    describe_error,
    short_read,
)
from backdrill.storage.s3_requests import S3Requests

log = logging.getLogger(__name__)


def open_object(
    requests: S3Requests, key: str, *, part_size: int, max_concurrency: int
) -> BinaryIO:
    """A stream of the object. The first GET asks for two parts: that is the whole
    object when it is small (read as one body that resumes where it broke off);
    larger objects are fetched as ranged GETs, ``max_concurrency`` in flight, in
    order. NotFound when there is no such object."""
    head = 2 * part_size
    try:
        try:
            resp = requests.call(
                "GetObject",
                "read",
                key,
                Bucket=requests.bucket,
                Key=requests.full(key),
                Range=f"bytes=0-{head - 1}",
            )
        except RequestFailed as exc:
            if exc.code != "InvalidRange":
                raise
            resp = get_from(requests, key, 0)  # an empty object has no byte 0
    except RequestFailed as exc:
        raise _missing(requests, key, exc) from None
    total = _total_size(resp)
    if total is not None and total > head:
        resp["Body"].close()
        reader = RangeReader(requests, key, total, part_size, max_concurrency)
        return cast(BinaryIO, reader)
    return cast(BinaryIO, ResumingBody(requests, key, resp))


def get_from(
    requests: S3Requests, key: str, offset: int, etag: str | None = None, action: str = "read"
) -> dict[str, Any]:
    """GetObject from ``offset`` (a ranged GET when > 0, pinned to ``etag``)."""
    args: dict[str, Any] = {"Bucket": requests.bucket, "Key": requests.full(key)}
    if offset:
        args["Range"] = f"bytes={offset}-"
    if etag:
        args["IfMatch"] = etag
    return cast(dict[str, Any], requests.call("GetObject", action, key, **args))


def read_range(requests: S3Requests, key: str, start: int, end: int) -> bytes:
    """Bytes ``start..end`` (inclusive), read whole and checked for length; a short
    or broken read is retried like any transient fault."""
    return _ranged(requests, key, start, end - start + 1, exact=True)


def read_upto(requests: S3Requests, key: str, offset: int, length: int) -> bytes:
    """At most ``length`` bytes from ``offset`` in one ranged GET: fewer when the object
    ends before (none when it ends at or before ``offset``). A body shorter than its
    Content-Length is retried like any transient fault; NotFound when there is no object."""
    if length <= 0:
        return b""
    try:
        return _ranged(requests, key, offset, length, exact=False)
    except RequestFailed as exc:
        if exc.code == "InvalidRange":
            return b""  # the object ends at or before ``offset``
        raise


def _ranged(requests: S3Requests, key: str, offset: int, length: int, *, exact: bool) -> bytes:
    """One ranged GET of ``length`` bytes from ``offset`` (``exact``: all of them, else
    as many as the object has), retried and mapped like every request."""

    def body(resp: dict[str, Any]) -> bytes:
        data = resp["Body"].read() if exact else resp["Body"].read(length + 1)
        sent = resp.get("ContentLength")
        expected = length if exact or not isinstance(sent, int) else min(sent, length)
        if len(data) < expected or (exact and len(data) != length):
            raise short_read(len(data), expected)
        return bytes(data[:length])

    try:
        return cast(
            bytes,
            requests.call(
                "GetObject",
                "read",
                key,
                consume=body,
                Bucket=requests.bucket,
                Key=requests.full(key),
                Range=f"bytes={offset}-{offset + length - 1}",
            ),
        )
    except RequestFailed as exc:
        if exc.code == "InvalidRange" and not exact:
            raise
        raise _missing(requests, key, exc) from None


def _missing(requests: S3Requests, key: str, exc: RequestFailed) -> NotFound | RequestFailed:
    if exc.code in MISSING_KEY:
        where = f"s3://{requests.bucket}/{requests.prefix}"
        return NotFound(f"object {key} does not exist in {where}")
    return exc


def _total_size(resp: dict[str, Any]) -> int | None:
    """The object's size from ``Content-Range: bytes 0-99/1234`` (None without one)."""
    content_range = str(resp.get("ContentRange") or "")
    total = content_range.rsplit("/", 1)[-1] if "/" in content_range else ""
    return int(total) if total.isdigit() else None


class RangeReader(io.RawIOBase):
    """Reads an object as consecutive ranges fetched concurrently, in order; at most
    ``max_concurrency`` ranges are held in memory."""

    def __init__(
        self, requests: S3Requests, key: str, total: int, part_size: int, max_concurrency: int
    ) -> None:
        super().__init__()
        self._requests = requests
        self._key = key
        self._total = total
        self._part_size = part_size
        self._max_concurrency = max_concurrency
        self._current = memoryview(b"")
        self._next_start = 0
        self._pending: collections.deque[Future[bytes]] = collections.deque()
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="s3-get")
        self._fill()

    def _fill(self) -> None:
        while len(self._pending) < self._max_concurrency and self._next_start < self._total:
            start = self._next_start
            end = min(start + self._part_size, self._total) - 1
            future = self._pool.submit(read_range, self._requests, self._key, start, end)
            self._pending.append(future)
            self._next_start = end + 1

    def readable(self) -> bool:
        return True

    def _advance(self) -> bool:
        if not self._pending:
            return False
        self._current = memoryview(self._pending.popleft().result())
        self._fill()
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while chunk := self.read(1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        while not self._current and self._advance():
            pass
        out = bytes(self._current[:size])
        self._current = self._current[len(out) :]
        return out

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            for future in self._pending:
                future.cancel()
            self._pool.shutdown(wait=True, cancel_futures=True)
        super().close()


class ResumingBody:
    """A GetObject body that never returns short data silently: a reset or truncation
    mid-body (detected against Content-Length) resumes with a ranged GET from the offset
    reached, pinned to the ETag; after the retry policy's attempts it is a StorageError."""

    def __init__(self, requests: S3Requests, key: str, resp: dict[str, Any]) -> None:
        self._requests = requests
        self._key = key
        self._body = resp["Body"]
        # without a length (a store answering chunked) truncation cannot be told apart
        # from the end: the sha256 of the manifest still catches it downstream
        self._length = int(resp["ContentLength"]) if "ContentLength" in resp else None
        self._etag = resp.get("ETag")
        self._offset = 0
        self._resumes = 0

    def read(self, size: int = -1) -> bytes:
        if size == 0 or (self._length is not None and self._offset >= self._length):
            return b""
        while True:
            try:
                data = self._body.read(None if size < 0 else size)
            except (*BOTO_ERRORS, OSError) as exc:
                self._resume(exc)
                continue
            if not data and self._length is not None and self._offset < self._length:
                self._resume(None)
                continue
            self._offset += len(data)
            return bytes(data)

    def _resume(self, exc: BaseException | None) -> None:
        self._resumes += 1
        attempts = self._requests.retry.attempts
        why = describe_error(exc) if exc is not None else "the connection ended early"
        where = self._requests.where(self._key)
        if self._resumes >= attempts:
            raise StorageError(
                f"cannot read {where}: {why} at byte {self._offset} of {self._length} "
                f"(gave up after {self._resumes} resumed reads)"
            )
        log.warning(
            "reading %s failed at byte %d of %d (attempt %d of %d): %s; resuming",
            where,
            self._offset,
            self._length,
            self._resumes,
            attempts,
            why,
        )
        with contextlib.suppress(Exception):
            self._body.close()
        resp = get_from(self._requests, self._key, self._offset, self._etag, "resume reading")
        self._body = resp["Body"]

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._body.close()

    def __enter__(self) -> ResumingBody:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
