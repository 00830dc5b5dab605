"""S3 errors, classified in one place: which boto errors are worth another attempt
(:func:`is_transient`), a short secret-free description of each (:func:`describe_error`),
and the :class:`RequestFailed` (a StorageError) a request that failed for good becomes.

Callers that expect an error code (a missing key, a store without a call) test
``RequestFailed.code``; they never catch boto's exceptions themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import botocore.exceptions

from backdrill.config.tls import is_version_refusal, refusal_hint
from backdrill.runtime.errors import ConfigError, StorageError
from backdrill.runtime.redact import SECRETS

#: every exception boto raises for a request (transport, client, service answer)
BOTO_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
#: a key that is not there (GetObject, HeadObject)
MISSING_KEY = frozenset({"404", "NoSuchKey", "NotFound"})
#: a store that lacks the call (ListObjectVersions, ListMultipartUploads, object lock)
NOT_IMPLEMENTED = frozenset({"NotImplemented", "501"})
_CREDENTIALS = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
_PERMANENT_CODES = {*_CREDENTIALS, "NoSuchBucket"}
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


class RequestFailed(StorageError):
    """An S3 request that failed for good (after the retries it was worth): ``code``
    is the store's error code ("" for a transport fault), ``status`` its HTTP status,
    ``description`` the one-line :func:`describe_error` of the cause."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int | None,
        description: str,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.status = status
        self.description = description


def short_read(actual: int, expected: int) -> Exception:
    """A body that ended before its length: transient, like a reset mid-body."""
    error: Exception = botocore.exceptions.IncompleteReadError(
        actual_bytes=actual, expected_bytes=expected
    )
    return error


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _status(exc: BaseException) -> int | None:
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status if isinstance(status, int) else None
    return None


def is_transient(exc: BaseException) -> bool:
    """True for faults worth another attempt: 5xx, throttling, resets, timeouts and a
    refused connection; False for credentials, permissions, missing buckets, DNS."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = error_code(exc)
        if code in _PERMANENT_CODES:
            return False
        return code in _TRANSIENT_CODES or _status(exc) in _TRANSIENT_STATUS
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return not _is_dns_failure(exc)
    return isinstance(exc, _TRANSIENT_TRANSPORT)


def request_failed(
    action: str, where: str, bucket: str, exc: BaseException
) -> ConfigError | RequestFailed:
    """The error a failed request is, for one line: ``cannot <action> <where>: <why>``,
    with the fix for a missing bucket or refused credentials. Missing credentials are
    configuration (exit 3), like a missing password file."""
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return ConfigError(describe_error(exc))
    code = error_code(exc)
    hint = None
    if code == "NoSuchBucket":
        hint = f"create the bucket {bucket} or fix storage -> url"
    elif code in _CREDENTIALS:
        hint = "check the S3 credentials and the bucket policy"
    description = describe_error(exc)
    return RequestFailed(
        f"cannot {action} {where}: {description}",
        code=code,
        status=_status(exc),
        description=description,
        hint=hint,
    )


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
        err: dict[str, Any] = exc.response.get("Error", {})
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
