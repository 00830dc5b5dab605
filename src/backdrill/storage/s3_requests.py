"""The one way an S3 request is sent: :meth:`S3Requests.call` retries it on transient
faults (:func:`~backdrill.storage.s3_errors.is_transient`, the repository's retry
policy, shorter once interrupted, longer during a clean-up) and turns a failure into
one :class:`~backdrill.storage.s3_errors.RequestFailed` naming the action and object.
Every request of the S3 backend goes through it, each page of a listing on its own
(:meth:`S3Requests.pages`): the client is this module's alone."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, cast

from botocore import xform_name

from backdrill.runtime import interrupts, retry
from backdrill.runtime.redact import SECRETS
from backdrill.runtime.retry import RetryPolicy
from backdrill.storage.s3_errors import BOTO_ERRORS, describe_error, is_transient, request_failed

#: once interrupted, a clean-up (abort, lock release) must end in seconds
_INTERRUPTED_RETRY = RetryPolicy(attempts=2, max_seconds=2, base_seconds=0.2, max_wait_seconds=1)


class S3Requests:
    """Requests to one bucket, keys relative to ``prefix``."""

    def __init__(
        self, client: Any, bucket: str, prefix: str, policy: RetryPolicy, cleanup_seconds: float
    ) -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.retry = policy
        self.cleanup_retry = policy.for_cleanup(cleanup_seconds)

    def full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def rel(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def full_prefix(self, prefix: str) -> str:
        """A listing's prefix; the whole repository for ``""``."""
        return self.full(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")

    def where(self, key: str) -> str:
        """``s3://bucket/prefix/key``, for messages."""
        return f"s3://{self.bucket}/{self.full(key)}"

    def policy(self) -> RetryPolicy:
        if interrupts.received():
            return _INTERRUPTED_RETRY
        # a clean-up after a failure waits for the store to come back: an upload left
        # open or a lock left behind would outlive the outage
        return self.cleanup_retry if interrupts.in_cleanup() else self.retry

    def call(
        self,
        op: str,
        action: str,
        key: str,
        *,
        consume: Callable[[dict[str, Any]], Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """The request ``op`` (e.g. ``GetObject``) with ``kwargs``, retried on transient
        faults, and its answer (or what ``consume`` makes of it, in the same attempt: a
        body read whole is retried with its request); a failure is
        RequestFailed("cannot <action> s3://bucket/prefix/<key>: ...") or, without
        credentials, a ConfigError."""
        method = getattr(self._client, xform_name(op))
        number = kwargs.get("PartNumber")
        label = f"{op} {number}" if number is not None else op
        what = f"S3 {label} s3://{self.bucket}/{kwargs.get('Key') or ''}".rstrip("/")

        def attempt() -> Any:
            answer = method(**kwargs)
            return consume(answer) if consume is not None else answer

        try:
            return retry.call(
                attempt,
                policy=self.policy(),
                transient=is_transient,
                what=what,
                describe=describe_error,
            )
        except BOTO_ERRORS as exc:
            raise request_failed(action, self.where(key), self.bucket, exc) from None

    def pages(self, op: str, action: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """The pages of a listing, each page request retried on its own."""
        token: dict[str, Any] = {}
        while True:
            page = cast(dict[str, Any], self.call(op, action, key, **kwargs, **token))
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

    def endpoint(self) -> str:
        """The endpoint's URL, secrets redacted."""
        return SECRETS.redact(str(self._client.meta.endpoint_url))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()
