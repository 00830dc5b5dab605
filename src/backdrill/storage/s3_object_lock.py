"""The object lock of an S3 bucket, as the store answers: whether it is enabled
(GetObjectLockConfiguration), the repository's declared capability, and what keeps an
object from being deleted (retention, legal hold: :func:`deletion_reasons`, pure)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from backdrill.runtime.errors import StorageError
from backdrill.storage.base import Capabilities
from backdrill.storage.s3_errors import NOT_IMPLEMENTED, RequestFailed
from backdrill.storage.s3_requests import S3Requests

_NO_LOCK_CONFIG = {"ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound"}


def deletion_reasons(head: dict[str, Any], now: datetime) -> str | None:
    """Why the object a HEAD answered for cannot be deleted at ``now``, or None."""
    reasons: list[str] = []
    if head.get("ObjectLockLegalHoldStatus") == "ON":
        reasons.append("legal hold")
    until = head.get("ObjectLockRetainUntilDate")
    if isinstance(until, datetime) and until > now:
        mode = head.get("ObjectLockMode", "retention")
        reasons.append(f"{mode} until {until.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}")
    return ", ".join(reasons) or None


class BucketObjectLock:
    def __init__(self, requests: S3Requests) -> None:
        self._requests = requests
        self._bucket_locks: bool | None = None
        self._capabilities: Capabilities | None = None

    def enabled(self) -> bool | None:
        """True/False when the store answers, None when it does not support the call."""
        try:
            resp = self._requests.call(
                "GetObjectLockConfiguration",
                "read the object lock configuration of",
                "",
                Bucket=self._requests.bucket,
            )
        except RequestFailed as exc:
            if exc.code in _NO_LOCK_CONFIG:
                return False
            if exc.code in NOT_IMPLEMENTED:
                return None
            raise
        conf = resp.get("ObjectLockConfiguration", {})
        return bool(conf.get("ObjectLockEnabled") == "Enabled")

    def capabilities(self) -> Capabilities:
        """Object lock as the bucket answers GetObjectLockConfiguration (asked once):
        S3 stores differ (MinIO and AWS support it per bucket, others not at all)."""
        if self._capabilities is None:
            where = f"s3://{self._requests.bucket}"
            try:
                enabled = self.enabled()
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

    def deletion_blocker(self, head: Callable[[], dict[str, Any]]) -> str | None:
        """Read retention and legal hold with ``head`` (HEAD of the object) where the
        bucket may lock (asked once): on a versioned, locked bucket a plain DELETE
        "succeeds" by adding a delete marker while the data stays."""
        if self._bucket_locks is None:
            try:
                self._bucket_locks = self.enabled() is not False
            except StorageError:
                self._bucket_locks = True
        if not self._bucket_locks:
            return None
        try:
            resp = head()
        except StorageError:
            return None  # gone or unreadable: the delete itself will tell
        return deletion_reasons(resp, datetime.now(UTC))
