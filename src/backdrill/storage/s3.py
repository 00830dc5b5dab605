"""``s3://bucket/prefix``: AWS S3 and S3-compatible stores (MinIO, Spaces, R2, moto).

The Storage of an S3 repository. Uses the portable subset of the S3 API (the client:
:mod:`~backdrill.storage.s3_client`); every request goes through one wrapper that
retries and maps errors (:mod:`~backdrill.storage.s3_requests`,
:mod:`~backdrill.storage.s3_errors`); reads are :mod:`~backdrill.storage.s3_reader`'s,
streaming writes (multipart, bounded parts in flight, aborted on any failure)
:mod:`~backdrill.storage.s3_writer`'s; the bucket's object lock
:mod:`~backdrill.storage.s3_object_lock`'s.
"""

from __future__ import annotations

import collections
import secrets
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from backdrill.config.model import ObjectLockConfig, S3Options, SseConfig
from backdrill.repository.layout import is_lock_key
from backdrill.runtime.errors import StorageError
from backdrill.runtime.retry import RetryPolicy
from backdrill.storage.base import (
    AlreadyExists,
    Capabilities,
    ObjectInfo,
    ObjectWriter,
    PendingUpload,
    ProbeResult,
    Retention,
    Storage,
)
from backdrill.storage.s3_client import make_client
from backdrill.storage.s3_errors import MISSING_KEY, NOT_IMPLEMENTED, RequestFailed
from backdrill.storage.s3_object_lock import BucketObjectLock
from backdrill.storage.s3_reader import open_object, read_upto
from backdrill.storage.s3_requests import S3Requests
from backdrill.storage.s3_writer import Multipart, S3Writer, WriteOptions

MiB = 1024 * 1024
_EXISTS = {"PreconditionFailed", "ConditionalRequestConflict"}


@dataclass(frozen=True)
class S3Settings:
    """How a repository on S3 is written and read (the ``storage:`` section's tuning)."""

    part_size_mb: int = 8
    max_concurrency: int = 4
    object_lock: ObjectLockConfig | None = None
    retry_policy: RetryPolicy | None = None
    cleanup_seconds: float = 300.0
    sse: SseConfig | None = None
    tls_min: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
    #: (connect, read) seconds
    timeouts: tuple[float, float] = (10, 60)


class S3Storage(Storage):
    """A repository under ``s3://bucket/prefix``; every request through ``self.requests``."""

    def __init__(
        self, url: str, bucket: str, prefix: str, options: S3Options, settings: S3Settings
    ) -> None:
        self.url = url
        self.bucket = bucket
        self.part_size = settings.part_size_mb * MiB
        self.max_concurrency = settings.max_concurrency
        self.object_lock = settings.object_lock
        client = make_client(
            options,
            max_pool=max(10, settings.max_concurrency * 2),
            connect_timeout=settings.timeouts[0],
            read_timeout=settings.timeouts[1],
            tls_min=settings.tls_min,
        )
        self.requests = S3Requests(
            client,
            bucket,
            prefix,
            settings.retry_policy or RetryPolicy(),
            settings.cleanup_seconds,
        )
        self.write_options = WriteOptions(settings.object_lock, settings.sse)
        self.multipart = Multipart(self.requests, self.write_options)
        self.bucket_lock = BucketObjectLock(self.requests)

    def _key_args(self, key: str) -> dict[str, Any]:
        return {"Bucket": self.bucket, "Key": self.requests.full(key)}

    # -- writes --------------------------------------------------------------------
    def open_writer(self, key: str) -> ObjectWriter:
        return S3Writer(
            self.multipart,
            key,
            part_size=self.part_size,
            max_concurrency=self.max_concurrency,
            put_small=lambda data: self.put_bytes(key, data),
        )

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        if_absent: bool = False,
        retention: Retention | None = None,
    ) -> None:
        args: dict[str, Any] = {**self._key_args(key), "Body": data}
        if if_absent:
            args["IfNoneMatch"] = "*"
        if not is_lock_key(key):  # rewritten and deleted: never written with a retention
            args.update(self.write_options.lock_args(data, retention))
        args.update(self.write_options.sse_args())
        try:
            self.requests.call("PutObject", "write", key, **args)
        except RequestFailed as exc:
            if if_absent and exc.code in _EXISTS:
                raise AlreadyExists(key) from None
            raise

    def delete(self, key: str) -> None:
        self.requests.call("DeleteObject", "delete", key, **self._key_args(key))

    def delete_many(self, keys: Iterable[str]) -> None:
        batch = list(keys)
        for key in batch:  # DeleteObjects needs Content-MD5 on some stores; one by one
            self.delete(key)

    # -- reads ---------------------------------------------------------------------
    def open_reader(self, key: str) -> BinaryIO:
        return open_object(
            self.requests, key, part_size=self.part_size, max_concurrency=self.max_concurrency
        )

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """One ranged GET (retried and mapped like every request)."""
        return read_upto(self.requests, key, offset, length)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            resp = self.head_raw(key)
        except RequestFailed as exc:
            if exc.code in MISSING_KEY:
                return None
            raise
        return ObjectInfo(key, int(resp["ContentLength"]), resp["LastModified"], resp.get("ETag"))

    def head_raw(self, key: str) -> dict[str, Any]:
        """The full HEAD response (object lock retention and legal hold fields)."""
        args = self._key_args(key)
        return dict(self.requests.call("HeadObject", "inspect", key, **args))

    # -- listings ------------------------------------------------------------------
    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        pages = self.requests.pages(
            "ListObjectsV2",
            "list",
            prefix,
            Bucket=self.bucket,
            Prefix=self.requests.full_prefix(prefix),
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    self.requests.rel(item["Key"]),
                    int(item["Size"]),
                    item["LastModified"],
                    item.get("ETag"),
                )

    def list_dirs(self, prefix: str) -> list[str]:
        full_prefix = self.requests.full(prefix)
        pages = self.requests.pages(
            "ListObjectsV2",
            "list",
            prefix,
            Bucket=self.bucket,
            Prefix=full_prefix,
            Delimiter="/",
        )
        names = [
            item["Prefix"][len(full_prefix) :].rstrip("/")
            for page in pages
            for item in page.get("CommonPrefixes", [])
        ]
        return sorted(names)

    def version_counts(self, prefix: str) -> dict[str, int] | None:
        """ListObjectVersions: versions and delete markers per key (None when the store
        lacks the call)."""
        counts: collections.Counter[str] = collections.Counter()
        pages = self.requests.pages(
            "ListObjectVersions",
            "list the versions under",
            prefix,
            Bucket=self.bucket,
            Prefix=self.requests.full(prefix),
        )
        try:
            for page in pages:
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    counts[self.requests.rel(item["Key"])] += 1
        except RequestFailed as exc:
            if exc.code in NOT_IMPLEMENTED:
                return None
            raise
        return dict(counts)

    def pending_uploads(self, prefix: str = "") -> list[PendingUpload]:
        pages = self.requests.pages(
            "ListMultipartUploads",
            "list uploads under",
            prefix,
            Bucket=self.bucket,
            Prefix=self.requests.full_prefix(prefix),
        )
        try:
            return [
                PendingUpload(self.requests.rel(item["Key"]), item["UploadId"], item["Initiated"])
                for page in pages
                for item in page.get("Uploads", [])
            ]
        except RequestFailed as exc:
            if exc.code in NOT_IMPLEMENTED:
                return []  # the store lacks ListMultipartUploads; nothing we can see
            raise

    def abort_pending(self, upload: PendingUpload) -> None:
        self.multipart.abort(upload.key, upload.upload_id)

    # -- object lock -----------------------------------------------------------------
    def deletion_blocker(self, key: str) -> str | None:
        return self.bucket_lock.deletion_blocker(lambda: self.head_raw(key))

    def capabilities(self) -> Capabilities:
        return self.bucket_lock.capabilities()

    # -- config check ----------------------------------------------------------------
    def probe(self) -> list[ProbeResult]:
        results: list[ProbeResult] = []
        try:
            self.requests.call("HeadBucket", "reach", "", Bucket=self.bucket)
            results.append(ProbeResult("bucket reachable", True, f"s3://{self.bucket}"))
        except RequestFailed as exc:
            results.append(ProbeResult("bucket reachable", False, self._probe_failure(exc)))
            return results
        probe_key = f".probe-{secrets.token_hex(4)}"
        try:
            self.put_bytes(probe_key, b"ok")
            self.delete(probe_key)
            results.append(ProbeResult("bucket writable", True, self.url))
        except StorageError as exc:
            results.append(ProbeResult("bucket writable", False, str(exc)))
        try:
            enabled = self.bucket_lock.enabled()
            detail = {True: "enabled", False: "not enabled", None: "not supported by the store"}[
                enabled
            ]
            wanted = self.object_lock is not None
            results.append(ProbeResult("object lock", bool(enabled) or not wanted, detail))
        except StorageError as exc:
            results.append(ProbeResult("object lock", self.object_lock is None, str(exc)))
        return results

    def _probe_failure(self, exc: RequestFailed) -> str:
        """What a failed HeadBucket means, with the fix: a missing bucket named."""
        if exc.code in {"404", "NoSuchBucket"} or exc.status == 404:
            endpoint = self.requests.endpoint()
            return (
                f"bucket {self.bucket} does not exist at {endpoint}: create it or fix "
                "storage -> url"
            )
        if exc.code in {"403", "AccessDenied"} or exc.status == 403:
            return (
                f"access to bucket {self.bucket} denied (HTTP 403): check the credentials "
                "(storage -> access_key_id, secret_access_key_file) and the bucket policy"
            )
        return exc.description

    def close(self) -> None:
        self.requests.close()
