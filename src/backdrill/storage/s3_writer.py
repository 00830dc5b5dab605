"""Writing S3 objects: the arguments of a write (object lock retention, server-side
encryption: :class:`WriteOptions`), the multipart requests (:class:`Multipart`) and the
streaming writer that uploads parts concurrently, a bounded number in flight, and
aborts the upload on any failure (:class:`S3Writer`)."""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from backdrill.config.model import ObjectLockConfig, SseConfig
from backdrill.runtime import interrupts
from backdrill.runtime.errors import StorageError
from backdrill.runtime.interrupts import shielded
from backdrill.storage.base import ObjectWriter, Retention
from backdrill.storage.s3_errors import RequestFailed
from backdrill.storage.s3_requests import S3Requests

log = logging.getLogger(__name__)
MAX_PARTS = 10_000


def content_md5(body: bytes | bytearray) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()  # noqa: S324


@dataclass(frozen=True)
class WriteOptions:
    """``storage.object_lock`` (a retention on every object written) and ``storage.sse``."""

    object_lock: ObjectLockConfig | None = None
    sse: SseConfig | None = None

    def sse_args(self) -> dict[str, Any]:
        if self.sse is None:
            return {}
        if self.sse.mode == "SSE-S3":
            return {"ServerSideEncryption": "AES256"}
        args: dict[str, Any] = {"ServerSideEncryption": "aws:kms"}
        if self.sse.kms_key_id:
            args["SSEKMSKeyId"] = self.sse.kms_key_id
        return args

    def lock_args(
        self, body: bytes | None = None, retention: Retention | None = None
    ) -> dict[str, Any]:
        """Object lock arguments of a write: the stronger of ``retention`` and the
        repository-wide ``storage.object_lock`` (COMPLIANCE over GOVERNANCE, the later
        date), or none."""
        wanted = [retention] if retention is not None else []
        if self.object_lock is not None:
            until = datetime.now(UTC) + timedelta(days=self.object_lock.days)
            wanted.append(Retention(self.object_lock.mode, until))
        if not wanted:
            return {}
        compliance = any(r.mode == "COMPLIANCE" for r in wanted)
        args: dict[str, Any] = {
            "ObjectLockMode": "COMPLIANCE" if compliance else "GOVERNANCE",
            "ObjectLockRetainUntilDate": max(r.until for r in wanted),
        }
        if body is not None:  # S3 requires an integrity header on object-lock writes
            args["ContentMD5"] = content_md5(body)
        return args


class Multipart:
    """The requests of a multipart upload, each through the request wrapper."""

    def __init__(self, requests: S3Requests, options: WriteOptions) -> None:
        self.requests = requests
        self.options = options

    def _args(self, key: str) -> dict[str, Any]:
        return {"Bucket": self.requests.bucket, "Key": self.requests.full(key)}

    def create(self, key: str) -> str:
        resp = self.requests.call(
            "CreateMultipartUpload",
            "start an upload to",
            key,
            **self._args(key),
            **self.options.lock_args(),
            **self.options.sse_args(),
        )
        return cast(str, resp["UploadId"])

    def upload_part(
        self, key: str, upload_id: str, number: int, body: bytes | bytearray
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.options.object_lock is not None:
            extra["ContentMD5"] = content_md5(body)
        resp = self.requests.call(
            "UploadPart",
            f"upload part {number} of",
            key,
            **self._args(key),
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            **extra,
        )
        return {"PartNumber": number, "ETag": resp["ETag"]}

    def complete(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        self.requests.call(
            "CompleteMultipartUpload",
            "complete the upload of",
            key,
            **self._args(key),
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )
        self._retain(key)

    def _retain(self, key: str) -> None:
        """Set the retention explicitly after a multipart upload: some stores (moto)
        drop the retention given to CreateMultipartUpload."""
        if self.options.object_lock is None:
            return
        args = self.options.lock_args()
        self.requests.call(
            "PutObjectRetention",
            "set the object lock retention of",
            key,
            **self._args(key),
            Retention={
                "Mode": args["ObjectLockMode"],
                "RetainUntilDate": args["ObjectLockRetainUntilDate"],
            },
        )

    def abort(self, key: str, upload_id: str) -> None:
        """Best effort: the caller is already failing. Under :func:`cleaning_up` the
        retries wait for the store (``cleanup_seconds``); what could not be aborted,
        prune removes."""
        try:
            self.requests.call(
                "AbortMultipartUpload",
                "abort the upload of",
                key,
                **self._args(key),
                UploadId=upload_id,
            )
        except RequestFailed as exc:
            if exc.code != "NoSuchUpload":
                log.warning(
                    "could not abort the upload of %s: %s; `backdrill prune` removes it",
                    key,
                    exc.description,
                )


class S3Writer(ObjectWriter):
    """Buffers parts and uploads them concurrently, at most ``max_in_flight`` at once;
    an object smaller than one part is one PutObject (``put_small``)."""

    def __init__(
        self,
        multipart: Multipart,
        key: str,
        *,
        part_size: int,
        max_concurrency: int,
        put_small: Callable[[bytes], None],
    ) -> None:
        super().__init__()
        self._multipart = multipart
        self._key = key
        self._part_size = part_size
        self._max_concurrency = max_concurrency
        self._put_small = put_small
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[Future[dict[str, Any]]] = []
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._pool: ThreadPoolExecutor | None = None

    def write(self, data: bytes) -> None:
        """Each byte is copied once, into the part it belongs to; a full part is handed
        to the upload pool as it is and a new one started."""
        self.bytes_written += len(data)
        view = memoryview(data)
        while view:
            room = self._part_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) >= self._part_size:
                part, self._buffer = self._buffer, bytearray()
                self._submit(part)

    def _submit(self, chunk: bytes | bytearray) -> None:
        if self._upload_id is None:
            with shielded():  # an upload created but not recorded could not be aborted
                self._upload_id = self._multipart.create(self._key)
            self._pool = ThreadPoolExecutor(self._max_concurrency, thread_name_prefix="s3-part")
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageError(f"{self._key}: more than {MAX_PARTS} parts; raise part_size_mb")
        # grow parts as the object grows so that 10,000 parts reach several TB
        if number % 1000 == 0:
            self._part_size *= 2
        # fail fast on an earlier part's error instead of uploading more
        for done in (f for f in self._parts if f.done()):
            done.result()
        self._slots.acquire()
        assert self._pool is not None
        upload_id = self._upload_id
        try:
            future = self._pool.submit(
                self._multipart.upload_part, self._key, upload_id, number, chunk
            )
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _f: self._slots.release())
        self._parts.append(future)

    def _commit(self) -> None:
        if self._upload_id is None:
            self._put_small(bytes(self._buffer))
            return
        try:
            if self._buffer or not self._parts:
                part, self._buffer = self._buffer, bytearray()
                self._submit(part)
            parts = [f.result() for f in self._parts]
            self._multipart.complete(self._key, self._upload_id, parts)
        except BaseException:
            self._abort()
            raise
        finally:
            self._shutdown()

    def _abort(self) -> None:
        with interrupts.cleaning_up():
            self._abort_upload()

    def _abort_upload(self) -> None:
        self._buffer.clear()
        for future in self._parts:
            future.cancel()
        self._shutdown()
        if self._upload_id is not None:
            self._multipart.abort(self._key, self._upload_id)

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
