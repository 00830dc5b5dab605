"""``s3://bucket/prefix``: AWS S3 and S3-compatible stores (MinIO, Spaces, R2, moto).

The only module that imports boto3. Uses the portable subset of the S3 API: path-style
addressing by default, checksums only when an operation requires them (MinIO and
older stores reject the newer default checksum headers), and multipart uploads with
a bounded number of parts in flight, aborted on any failure.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import io
import logging
import secrets
import ssl
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, cast
from urllib.parse import urlparse

import boto3
import botocore.exceptions
from botocore.config import Config as BotoConfig
from botocore.httpsession import URLLib3Session, create_urllib3_context

from backdrill import interrupts, retry
from backdrill.config import ObjectLockConfig, S3Options, SseConfig
from backdrill.errors import ConfigError, NotFound, StorageError
from backdrill.interrupts import shielded
from backdrill.redact import SECRETS
from backdrill.retry import RetryPolicy
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
from backdrill.tls import is_version_refusal, refusal_hint, tighten

log = logging.getLogger(__name__)
_INTERRUPTED_RETRY = RetryPolicy(attempts=2, max_seconds=2, base_seconds=0.2, max_wait_seconds=1)
MiB = 1024 * 1024
MAX_PARTS = 10_000
_PERMANENT_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket"}
_TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "XAmzContentSHA256Mismatch",
    "503",
    "500",
    "502",
    "504",
}
_TRANSIENT_STATUS = {429, 500, 502, 503, 504}
#: errors of the transport: the request may be sent again (bodies are bytes)
_TRANSIENT_TRANSPORT = (
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
)


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_transient(exc: BaseException) -> bool:
    """True for faults worth another attempt: 5xx, throttling, resets, timeouts and a
    refused connection; False for credentials, permissions, missing buckets, DNS."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = _error_code(exc)
        if code in _PERMANENT_CODES:
            return False
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code in _TRANSIENT_CODES or status in _TRANSIENT_STATUS
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return not _is_dns_failure(exc)
    return isinstance(exc, _TRANSIENT_TRANSPORT)


def _is_dns_failure(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        text = str(cause).lower()
        if type(cause).__name__ == "NameResolutionError" or any(
            s in text for s in ("name or service not known", "nodename nor servname", "getaddrinfo")
        ):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _host_port(exc: BaseException) -> str:
    """``host:port`` of the endpoint a transport error names (botocore keeps it in
    ``kwargs``), without path or credentials."""
    url = str(getattr(exc, "kwargs", {}).get("endpoint_url") or "")
    parsed = urlparse(url)
    if not parsed.hostname:
        return "the endpoint"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"{parsed.hostname}:{port}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    cause: BaseException | None = exc
    seen = 0
    while cause is not None and seen < 20:
        yield cause
        cause, seen = cause.__cause__ or cause.__context__, seen + 1


def _speaks_plain_http(exc: BaseException) -> bool:
    markers = ("wrong_version_number", "wrong version number", "record layer failure")
    return any(m in str(c).lower() for c in _causes(exc) for m in markers)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(c).lower() for c in _causes(exc))
    if "refused" in text:
        return "connection refused"
    if "unreachable" in text:
        return "network unreachable"
    if "reset" in text:
        return "connection reset"
    return "no connection"


def describe_error(exc: BaseException) -> str:
    """A short, secret-free description of a boto error for one error line."""
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        text = f"{err.get('Code', 'error')} (HTTP {status}): {err.get('Message', '')}".strip()
    elif isinstance(exc, botocore.exceptions.NoCredentialsError):
        text = "no S3 credentials found (set storage -> access_key_id/secret_access_key_file "
        text += "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
    elif isinstance(exc, botocore.exceptions.EndpointConnectionError) and _is_dns_failure(exc):
        text = f"{exc} (the host name does not resolve: check storage -> endpoint_url)"
    elif isinstance(exc, botocore.exceptions.SSLError) and _speaks_plain_http(exc):
        where = _host_port(exc)
        text = f"TLS handshake with {where} failed: the endpoint speaks plain HTTP: use http:// "
        text += "in storage -> endpoint_url (or enable TLS on the store)"
    elif isinstance(exc, botocore.exceptions.ConnectTimeoutError):
        text = f"no answer from {_host_port(exc)} (connect timeout): check storage -> "
        text += "endpoint_url, and that no firewall drops the traffic"
    elif isinstance(exc, botocore.exceptions.EndpointConnectionError):
        text = f"cannot connect to {_host_port(exc)} ({_reason(exc)}): check storage -> "
        text += "endpoint_url and that the store is running"
    else:
        text = str(exc) or type(exc).__name__
    if isinstance(exc, botocore.exceptions.SSLError) and is_version_refusal(text):
        text += f" ({refusal_hint()})"
    notes = "; ".join(getattr(exc, "__notes__", ()))
    text = text.rstrip(": ") + (f" ({notes})" if notes else "")
    return SECRETS.redact(text)


def make_client(
    options: S3Options,
    *,
    max_pool: int = 10,
    connect_timeout: float = 10,
    read_timeout: float = 60,
    tls_min: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
) -> Any:
    """A boto3 S3 client configured for portability across S3-compatible stores, that
    refuses TLS below ``tls_min`` (:func:`_require_tls`)."""
    boto_config = BotoConfig(
        s3={"addressing_style": options.addressing_style},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # one attempt per call: backdrill.retry decides, so attempts are not multiplied.
        # (In this dict botocore reads max_attempts as *retries*: max_attempts=1 sends a
        # request twice; total_max_attempts counts the first request too.)
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=max_pool,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    verify: bool | str = options.verify_tls
    if options.verify_tls and options.ca_bundle is not None:
        verify = str(options.ca_bundle)
    session = boto3.session.Session()
    client = session.client(
        "s3",
        endpoint_url=options.endpoint_url,
        region_name=options.region or "us-east-1",
        aws_access_key_id=options.access_key_id,
        aws_secret_access_key=(
            options.secret_access_key.get_secret_value() if options.secret_access_key else None
        ),
        aws_session_token=(
            options.session_token.get_secret_value() if options.session_token else None
        ),
        verify=verify,
        config=boto_config,
    )
    _require_tls(client, tls_min)
    return client


def _require_tls(client: Any, minimum: ssl.TLSVersion) -> None:
    """Make ``client`` refuse TLS below ``minimum``.

    botocore takes no SSL context nor minimum version (boto/botocore#1822, #2488): its
    URLLib3Session builds one context (``_get_ssl_context``) for its pool manager at
    construction, and another per proxy later. Both are tightened here, on this client's
    session only; a botocore whose session is shaped otherwise is refused (StorageError)
    rather than left at its default minimum."""
    session = getattr(getattr(client, "_endpoint", None), "http_session", None)
    manager = getattr(session, "_manager", None)
    context = getattr(manager, "connection_pool_kw", {}).get("ssl_context")
    if not isinstance(session, URLLib3Session) or not isinstance(context, ssl.SSLContext):
        raise StorageError(
            "cannot set the TLS minimum on this botocore's HTTP session "
            f"(botocore {botocore.__version__}); refusing to connect without it"
        )
    tighten(context, minimum)

    def tightened_context() -> ssl.SSLContext:
        fresh: ssl.SSLContext = create_urllib3_context()
        tighten(fresh, minimum)
        return fresh

    session._get_ssl_context = tightened_context


def _total_size(resp: dict[str, Any]) -> int | None:
    """The object's size from ``Content-Range: bytes 0-99/1234`` (None without one)."""
    content_range = str(resp.get("ContentRange") or "")
    total = content_range.rsplit("/", 1)[-1] if "/" in content_range else ""
    return int(total) if total.isdigit() else None


class _RangeReader(io.RawIOBase):
    """Reads an object as consecutive ranges fetched concurrently, in order; at most
    ``max_concurrency`` ranges are held in memory."""

    def __init__(self, store: S3Storage, key: str, total: int) -> None:
        super().__init__()
        self._store = store
        self._key = key
        self._total = total
        self._current = memoryview(b"")
        self._next_start = 0
        self._pending: collections.deque[Future[bytes]] = collections.deque()
        self._pool = ThreadPoolExecutor(store.max_concurrency, thread_name_prefix="s3-get")
        self._fill()

    def _fill(self) -> None:
        while len(self._pending) < self._store.max_concurrency and self._next_start < self._total:
            start = self._next_start
            end = min(start + self._store.part_size, self._total) - 1
            self._pending.append(self._pool.submit(self._store.read_range, self._key, start, end))
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


class _S3Writer(ObjectWriter):
    """Buffers parts and uploads them concurrently, at most ``max_in_flight`` at once."""

    def __init__(self, store: S3Storage, key: str) -> None:
        super().__init__()
        self._store = store
        self._key = key
        self._part_size = store.part_size
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[Future[dict[str, Any]]] = []
        self._slots = threading.BoundedSemaphore(store.max_concurrency)
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
                self._upload_id = self._store.create_multipart(self._key)
            self._pool = ThreadPoolExecutor(
                self._store.max_concurrency, thread_name_prefix="s3-part"
            )
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
            future = self._pool.submit(self._store.upload_part, self._key, upload_id, number, chunk)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _f: self._slots.release())
        self._parts.append(future)

    def _commit(self) -> None:
        if self._upload_id is None:
            self._store.put_bytes(self._key, bytes(self._buffer))
            return
        try:
            if self._buffer or not self._parts:
                part, self._buffer = self._buffer, bytearray()
                self._submit(part)
            parts = [f.result() for f in self._parts]
            self._store.complete_multipart(self._key, self._upload_id, parts)
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
            self._store.abort_multipart(self._key, self._upload_id)

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class S3Storage(Storage):
    def __init__(  # noqa: PLR0913  (split pending: issue 16)
        self,
        url: str,
        bucket: str,
        prefix: str,
        options: S3Options,
        *,
        part_size_mb: int = 8,
        max_concurrency: int = 4,
        object_lock: ObjectLockConfig | None = None,
        retry_policy: RetryPolicy | None = None,
        cleanup_seconds: float = 300.0,
        sse: SseConfig | None = None,
        tls_min: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
        timeouts: tuple[float, float] = (10, 60),
    ) -> None:
        self.url = url
        self.retry = retry_policy or RetryPolicy()
        self.cleanup_retry = self.retry.for_cleanup(cleanup_seconds)
        self.sse = sse
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = part_size_mb * MiB
        self.max_concurrency = max_concurrency
        self.object_lock = object_lock
        self._bucket_locks: bool | None = None
        self._capabilities: Capabilities | None = None
        self.client = make_client(
            options,
            max_pool=max(10, max_concurrency * 2),
            connect_timeout=timeouts[0],
            read_timeout=timeouts[1],
            tls_min=tls_min,
        )

    # -- helpers -----------------------------------------------------------------
    def _call(self, op: str, fn: Any, **kwargs: Any) -> Any:
        """One S3 request, retried on transient faults (every call site uses this)."""
        key = kwargs.get("Key") or ""
        what = f"S3 {op} s3://{self.bucket}/{key}".rstrip("/")
        try:
            return retry.call(
                lambda: fn(**kwargs),
                policy=self._policy(),
                transient=is_transient,
                what=what,
                describe=describe_error,
            )
        except botocore.exceptions.NoCredentialsError as exc:
            # missing credentials are configuration (exit 3), like a missing password file
            raise ConfigError(describe_error(exc)) from None

    def _policy(self) -> RetryPolicy:
        if interrupts.received():  # the clean-up (abort, lock release) must end in seconds
            return _INTERRUPTED_RETRY
        # a clean-up after a failure waits for the store to come back: an upload left
        # open or a lock left behind would outlive the outage
        return self.cleanup_retry if interrupts.in_cleanup() else self.retry

    def _sse_args(self) -> dict[str, Any]:
        if self.sse is None:
            return {}
        if self.sse.mode == "SSE-S3":
            return {"ServerSideEncryption": "AES256"}
        args: dict[str, Any] = {"ServerSideEncryption": "aws:kms"}
        if self.sse.kms_key_id:
            args["SSEKMSKeyId"] = self.sse.kms_key_id
        return args

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def _fail(self, action: str, key: str, exc: BaseException) -> StorageError:
        where = f"s3://{self.bucket}/{self._full(key)}"
        code = _error_code(exc)
        hint = None
        if code == "NoSuchBucket":
            hint = f"create the bucket {self.bucket} or fix storage -> url"
        elif code in {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
            hint = "check the S3 credentials and the bucket policy"
        return StorageError(f"cannot {action} {where}: {describe_error(exc)}", hint=hint)

    def _read_failure(self, key: str, exc: BaseException) -> NotFound | StorageError:
        if _error_code(exc) in {"NoSuchKey", "404"}:
            return NotFound(f"object {key} does not exist in s3://{self.bucket}/{self.prefix}")
        return self._fail("read", key, exc)

    def _lock_args(
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
            args["ContentMD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()  # noqa: S324
        return args

    # -- multipart pieces used by the writer --------------------------------------
    def create_multipart(self, key: str) -> str:
        try:
            resp = self._call(
                "CreateMultipartUpload",
                self.client.create_multipart_upload,
                Bucket=self.bucket,
                Key=self._full(key),
                **self._lock_args(),
                **self._sse_args(),
            )
        except botocore.exceptions.BotoCoreError as exc:
            raise self._fail("start an upload to", key, exc) from None
        except botocore.exceptions.ClientError as exc:
            raise self._fail("start an upload to", key, exc) from None
        return cast(str, resp["UploadId"])

    def upload_part(
        self, key: str, upload_id: str, number: int, body: bytes | bytearray
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.object_lock is not None:
            extra["ContentMD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()  # noqa: S324
        try:
            resp = self._call(
                f"UploadPart {number}",
                self.client.upload_part,
                Bucket=self.bucket,
                Key=self._full(key),
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
                **extra,
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._fail(f"upload part {number} of", key, exc) from None
        return {"PartNumber": number, "ETag": resp["ETag"]}

    def complete_multipart(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        try:
            self._call(
                "CompleteMultipartUpload",
                self.client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=self._full(key),
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._fail("complete the upload of", key, exc) from None
        self._retain(key)

    def _retain(self, key: str) -> None:
        """Set the retention explicitly after a multipart upload: some stores (moto)
        drop the retention given to CreateMultipartUpload."""
        if self.object_lock is None:
            return
        args = self._lock_args()
        try:
            self._call(
                "PutObjectRetention",
                self.client.put_object_retention,
                Bucket=self.bucket,
                Key=self._full(key),
                Retention={
                    "Mode": args["ObjectLockMode"],
                    "RetainUntilDate": args["ObjectLockRetainUntilDate"],
                },
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._fail("set the object lock retention of", key, exc) from None

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Best effort: the caller is already failing. Under :func:`cleaning_up` the
        retries wait for the store (``cleanup_seconds``); what could not be aborted,
        prune removes."""
        try:
            self._call(
                "AbortMultipartUpload",
                self.client.abort_multipart_upload,
                Bucket=self.bucket,
                Key=self._full(key),
                UploadId=upload_id,
            )
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) != "NoSuchUpload":
                self._left_open(key, exc)
        except botocore.exceptions.BotoCoreError as exc:
            self._left_open(key, exc)

    def _left_open(self, key: str, exc: BaseException) -> None:
        log.warning(
            "could not abort the upload of %s: %s; `backdrill prune` removes it",
            key,
            describe_error(exc),
        )

    # -- Storage -----------------------------------------------------------------
    def open_writer(self, key: str) -> ObjectWriter:
        return _S3Writer(self, key)

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        if_absent: bool = False,
        retention: Retention | None = None,
    ) -> None:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full(key), "Body": data}
        if if_absent:
            args["IfNoneMatch"] = "*"
        if not key.startswith("locks/"):  # lock objects are rewritten and deleted
            args.update(self._lock_args(data, retention))
        args.update(self._sse_args())
        try:
            self._call("PutObject", self.client.put_object, **args)
        except botocore.exceptions.ClientError as exc:
            if if_absent and _error_code(exc) in {
                "PreconditionFailed",
                "ConditionalRequestConflict",
            }:
                raise AlreadyExists(key) from None
            raise self._fail("write", key, exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._fail("write", key, exc) from None

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start..end`` (inclusive), read whole and checked for length; a short
        or broken read is retried like any transient fault."""

        def fetch(**kwargs: Any) -> bytes:
            data = self.client.get_object(**kwargs)["Body"].read()
            if len(data) != end - start + 1:
                raise botocore.exceptions.IncompleteReadError(
                    actual_bytes=len(data), expected_bytes=end - start + 1
                )
            return bytes(data)

        try:
            return cast(
                bytes,
                self._call(
                    "GetObject",
                    fetch,
                    Bucket=self.bucket,
                    Key=self._full(key),
                    Range=f"bytes={start}-{end}",
                ),
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._read_failure(key, exc) from None

    def open_reader(self, key: str) -> BinaryIO:
        """A stream of the object. The first GET asks for two parts: that is the whole
        object when it is small (read as one body that resumes where it broke off);
        larger objects are fetched as ranged GETs, ``max_concurrency`` in flight, in
        order."""
        head = 2 * self.part_size
        try:
            try:
                resp = self._call(
                    "GetObject",
                    self.client.get_object,
                    Bucket=self.bucket,
                    Key=self._full(key),
                    Range=f"bytes=0-{head - 1}",
                )
            except botocore.exceptions.ClientError as exc:
                if _error_code(exc) != "InvalidRange":
                    raise
                resp = self.get_range(key, 0)  # an empty object has no byte 0
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._read_failure(key, exc) from None
        total = _total_size(resp)
        if total is not None and total > head:
            resp["Body"].close()
            return cast(BinaryIO, _RangeReader(self, key, total))
        return cast(BinaryIO, ResumingBody(self, key, resp))

    def get_range(self, key: str, offset: int, etag: str | None = None) -> dict[str, Any]:
        """GetObject from ``offset`` (a ranged GET when > 0, pinned to ``etag``)."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full(key)}
        if offset:
            args["Range"] = f"bytes={offset}-"
        if etag:
            args["IfMatch"] = etag
        return cast(dict[str, Any], self._call("GetObject", self.client.get_object, **args))

    def head(self, key: str) -> ObjectInfo | None:
        try:
            resp = self._call(
                "HeadObject", self.client.head_object, Bucket=self.bucket, Key=self._full(key)
            )
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise self._fail("inspect", key, exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._fail("inspect", key, exc) from None
        return ObjectInfo(key, int(resp["ContentLength"]), resp["LastModified"], resp.get("ETag"))

    def head_raw(self, key: str) -> dict[str, Any]:
        """The full HEAD response (object lock retention and legal hold fields)."""
        try:
            return cast(
                dict[str, Any],
                self._call(
                    "HeadObject", self.client.head_object, Bucket=self.bucket, Key=self._full(key)
                ),
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._fail("inspect", key, exc) from None

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        full_prefix = self._full(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        try:
            for page in self._pages(
                "ListObjectsV2", self.client.list_objects_v2, Bucket=self.bucket, Prefix=full_prefix
            ):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        self._rel(item["Key"]),
                        int(item["Size"]),
                        item["LastModified"],
                        item.get("ETag"),
                    )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._fail("list", prefix or "", exc) from None

    def version_counts(self, prefix: str) -> dict[str, int] | None:
        """ListObjectVersions: versions and delete markers per key (None when the store
        lacks the call)."""
        counts: collections.Counter[str] = collections.Counter()
        try:
            for page in self._pages(
                "ListObjectVersions",
                self.client.list_object_versions,
                Bucket=self.bucket,
                Prefix=self._full(prefix),
            ):
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    counts[self._rel(item["Key"])] += 1
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in {"NotImplemented", "501"}:
                return None
            raise self._fail("list the versions under", prefix, exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._fail("list the versions under", prefix, exc) from None
        return dict(counts)

    def list_dirs(self, prefix: str) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        full_prefix = self._full(prefix)
        names: list[str] = []
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix, Delimiter="/"):
                for item in page.get("CommonPrefixes", []):
                    names.append(item["Prefix"][len(full_prefix) :].rstrip("/"))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._fail("list", prefix, exc) from None
        return sorted(names)

    def delete(self, key: str) -> None:
        try:
            self._call(
                "DeleteObject", self.client.delete_object, Bucket=self.bucket, Key=self._full(key)
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._fail("delete", key, exc) from None

    def delete_many(self, keys: Iterable[str]) -> None:
        batch = list(keys)
        for key in batch:  # DeleteObjects needs Content-MD5 on some stores; one by one
            self.delete(key)

    def pending_uploads(self, prefix: str = "") -> list[PendingUpload]:
        full_prefix = self._full(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        pending: list[PendingUpload] = []
        try:
            for page in self._pages(
                "ListMultipartUploads",
                self.client.list_multipart_uploads,
                Bucket=self.bucket,
                Prefix=full_prefix,
            ):
                for item in page.get("Uploads", []):
                    pending.append(
                        PendingUpload(self._rel(item["Key"]), item["UploadId"], item["Initiated"])
                    )
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in {"NotImplemented", "501"}:
                return []  # the store lacks ListMultipartUploads; nothing we can see
            raise self._fail("list uploads under", prefix, exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._fail("list uploads under", prefix, exc) from None
        return pending

    def abort_pending(self, upload: PendingUpload) -> None:
        self.abort_multipart(upload.key, upload.upload_id)

    def deletion_blocker(self, key: str) -> str | None:
        """Read retention and legal hold with HEAD: on a versioned, locked bucket a plain
        DELETE "succeeds" by adding a delete marker while the data stays."""
        if self._bucket_locks is None:
            try:
                self._bucket_locks = self.object_lock_enabled() is not False
            except StorageError:
                self._bucket_locks = True
        if not self._bucket_locks:
            return None
        try:
            resp = self.head_raw(key)
        except StorageError:
            return None  # gone or unreadable: the delete itself will tell
        reasons: list[str] = []
        if resp.get("ObjectLockLegalHoldStatus") == "ON":
            reasons.append("legal hold")
        until = resp.get("ObjectLockRetainUntilDate")
        if isinstance(until, datetime) and until > datetime.now(UTC):
            mode = resp.get("ObjectLockMode", "retention")
            reasons.append(f"{mode} until {until.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}")
        return ", ".join(reasons) or None

    def capabilities(self) -> Capabilities:
        """Object lock as the bucket answers GetObjectLockConfiguration (asked once):
        S3 stores differ (MinIO and AWS support it per bucket, others not at all)."""
        if self._capabilities is None:
            where = f"s3://{self.bucket}"
            try:
                enabled = self.object_lock_enabled()
            except StorageError as exc:
                enabled, why = False, f"its object lock configuration is unreadable ({exc})"
            else:
                why = {
                    True: "object lock is enabled",
                    False: "object lock is not enabled on the bucket",
                    None: "the store does not support object lock",
                }[enabled]
            self._capabilities = Capabilities(object_lock=bool(enabled), detail=f"{where}: {why}")
        return self._capabilities

    def object_lock_enabled(self) -> bool | None:
        """True/False when the store answers, None when it does not support the call."""
        try:
            resp = self._call(
                "GetObjectLockConfiguration",
                self.client.get_object_lock_configuration,
                Bucket=self.bucket,
            )
        except botocore.exceptions.ClientError as exc:
            code = _error_code(exc)
            if code in {"ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound"}:
                return False
            if code in {"NotImplemented", "501"}:
                return None
            raise self._fail("read the object lock configuration of", "", exc) from None
        except botocore.exceptions.BotoCoreError as exc:  # TLS, connection: named, not raw
            raise self._fail("read the object lock configuration of", "", exc) from None
        conf = resp.get("ObjectLockConfiguration", {})
        return bool(conf.get("ObjectLockEnabled") == "Enabled")

    def probe(self) -> list[ProbeResult]:
        results: list[ProbeResult] = []
        try:
            self._call("HeadBucket", self.client.head_bucket, Bucket=self.bucket)
            results.append(ProbeResult("bucket reachable", True, f"s3://{self.bucket}"))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
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
            enabled = self.object_lock_enabled()
            detail = {True: "enabled", False: "not enabled", None: "not supported by the store"}[
                enabled
            ]
            wanted = self.object_lock is not None
            results.append(ProbeResult("object lock", bool(enabled) or not wanted, detail))
        except StorageError as exc:
            results.append(ProbeResult("object lock", self.object_lock is None, str(exc)))
        return results

    def _probe_failure(self, exc: BaseException) -> str:
        """What a failed HeadBucket means, with the fix: a missing bucket named."""
        status = (
            exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if isinstance(exc, botocore.exceptions.ClientError)
            else None
        )
        if _error_code(exc) in {"404", "NoSuchBucket"} or status == 404:
            endpoint = SECRETS.redact(str(self.client.meta.endpoint_url))
            return (
                f"bucket {self.bucket} does not exist at {endpoint}: create it or fix "
                "storage -> url"
            )
        if _error_code(exc) in {"403", "AccessDenied"} or status == 403:
            return (
                f"access to bucket {self.bucket} denied (HTTP 403): check the credentials "
                "(storage -> access_key_id, secret_access_key_file) and the bucket policy"
            )
        return describe_error(exc)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()

    def _pages(self, op: str, fn: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """The pages of a listing, each page request retried on its own."""
        token: dict[str, Any] = {}
        while True:
            page = cast(dict[str, Any], self._call(op, fn, **kwargs, **token))
            yield page
            if not page.get("IsTruncated"):
                return
            if "NextContinuationToken" in page:
                token = {"ContinuationToken": page["NextContinuationToken"]}
            elif "NextKeyMarker" in page:
                token = {"KeyMarker": page["NextKeyMarker"]}
                if page.get("NextUploadIdMarker"):
                    token["UploadIdMarker"] = page["NextUploadIdMarker"]
                if page.get("NextVersionIdMarker"):
                    token["VersionIdMarker"] = page["NextVersionIdMarker"]
            else:
                return


class ResumingBody:
    """A GetObject body that never returns short data silently: a reset or truncation
    mid-body (detected against Content-Length) resumes with a ranged GET from the offset
    reached, pinned to the ETag; after the retry policy's attempts it is a StorageError."""

    def __init__(self, store: S3Storage, key: str, resp: dict[str, Any]) -> None:
        self._store = store
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
            except (
                botocore.exceptions.BotoCoreError,
                botocore.exceptions.ClientError,
                OSError,
            ) as exc:
                self._resume(exc)
                continue
            if not data and self._length is not None and self._offset < self._length:
                self._resume(None)
                continue
            self._offset += len(data)
            return bytes(data)

    def _resume(self, exc: BaseException | None) -> None:
        self._resumes += 1
        why = describe_error(exc) if exc is not None else "the connection ended early"
        where = f"s3://{self._store.bucket}/{self._store._full(self._key)}"
        if self._resumes >= self._store.retry.attempts:
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
            self._store.retry.attempts,
            why,
        )
        with contextlib.suppress(Exception):
            self._body.close()
        try:
            resp = self._store.get_range(self._key, self._offset, self._etag)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
            raise self._store._fail("resume reading", self._key, err) from None
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
