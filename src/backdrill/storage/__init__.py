"""Storage backends behind one interface (:class:`Storage`); pick one from a URL."""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import unquote, urlparse

from backdrill.config.model import S3Options, StorageConfig
from backdrill.runtime.retry import NO_RETRY, RetryPolicy
from backdrill.storage.base import AlreadyExists, ObjectInfo, ObjectWriter, Storage

__all__ = [
    "AlreadyExists",
    "ObjectInfo",
    "ObjectWriter",
    "Storage",
    "open_probe_storage",
    "open_storage",
]


def open_storage(
    url: str, options: S3Options | None = None, *, tls_min: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
) -> Storage:
    """Open ``s3://bucket/prefix`` (with ``options``, refusing TLS below ``tls_min``) or
    ``file:///path``."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        from backdrill.storage.local import LocalStorage

        return LocalStorage(Path(unquote(parsed.path)))
    from backdrill.storage.s3 import S3Settings, S3Storage

    opts = options or S3Options()
    settings = S3Settings(tls_min=tls_min)
    if isinstance(opts, StorageConfig):
        settings = S3Settings(
            part_size_mb=opts.part_size_mb,
            max_concurrency=opts.max_concurrency,
            object_lock=opts.object_lock,
            retry_policy=opts.retry.policy(),
            cleanup_seconds=opts.retry.cleanup_seconds,
            sse=opts.sse,
            tls_min=tls_min,
        )
    return S3Storage(url, parsed.netloc, parsed.path, opts, settings)


def open_repository(
    config: StorageConfig, *, tls_min: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
) -> Storage:
    return open_storage(config.url, config, tls_min=tls_min)


#: ``config check``: seconds to wait for a store to accept a connection, and to answer
PROBE_TIMEOUTS = (3.0, 10.0)


def open_probe_storage(
    url: str,
    options: S3Options | None = None,
    retry_policy: RetryPolicy | None = None,
    *,
    tls_min: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
) -> Storage:
    """``url`` opened for ``config check`` (one attempt per request) or a best-effort
    write (``retry_policy``), with short timeouts: a host that does not answer is
    reported in seconds, not after a retry storm."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return open_storage(url, options)
    from backdrill.storage.s3 import S3Settings, S3Storage

    opts = options or S3Options()
    settings = S3Settings(
        object_lock=opts.object_lock if isinstance(opts, StorageConfig) else None,
        retry_policy=retry_policy or NO_RETRY,
        cleanup_seconds=0,
        sse=opts.sse if isinstance(opts, StorageConfig) else None,
        timeouts=PROBE_TIMEOUTS,
        tls_min=tls_min,
    )
    return S3Storage(url, parsed.netloc, parsed.path, opts, settings)
