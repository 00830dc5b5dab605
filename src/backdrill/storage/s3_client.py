"""The boto3 S3 client: portable across S3-compatible stores, one attempt per request
(:mod:`backdrill.storage.s3_requests` retries), refusing TLS below a minimum."""

from __future__ import annotations

import ssl
from typing import Any

import boto3
import botocore
from botocore.config import Config as BotoConfig
from botocore.httpsession import URLLib3Session, create_urllib3_context

from backdrill.config.model import S3Options
from backdrill.config.tls import tighten
from backdrill.runtime.errors import StorageError


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
        # one attempt per call: backdrill.runtime.retry decides, so attempts are not multiplied.
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
