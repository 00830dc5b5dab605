"""TLS for the connections backdrill opens itself (S3, webhooks): an SSL context with a
minimum protocol version, the message when a server offers less, and a probe that says
which version an endpoint negotiates (``config check``)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from urllib.parse import urlparse

from backdrill.config.security import STANDARD_TLS

#: what OpenSSL says (in libpq's, urllib3's and Python's errors) when no common version
_VERSION_MARKERS = (
    "protocol version",
    "unsupported protocol",
    "wrong version number",
    "no protocols available",
    "tlsv1 alert protocol version",
)


def client_context(
    minimum: ssl.TLSVersion, *, verify: bool = True, cafile: Path | None = None
) -> ssl.SSLContext:
    """A client context that refuses anything below ``minimum``."""
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    tighten(context, minimum)
    return context


def tighten(context: ssl.SSLContext, minimum: ssl.TLSVersion) -> None:
    """Raise ``context``'s minimum to ``minimum`` (never lowers it)."""
    # MINIMUM_SUPPORTED is -2: below any version
    context.minimum_version = max(context.minimum_version, minimum)


def is_version_refusal(text: str) -> bool:
    """True when an error text says the peers share no TLS version."""
    low = text.lower()
    return any(marker in low for marker in _VERSION_MARKERS)


def refusal_hint() -> str:
    """What to say when a server offers only an older TLS than backdrill's minimum."""
    return (
        "the server offers no TLS version at or above backdrill's minimum (TLS "
        f"{STANDARD_TLS} unless security -> tls_min_version lowers it): upgrade the server, "
        'or set security -> tls_min_version: "1.2" to allow TLS 1.2 (a deviation from the '
        "standard, flagged by config check and status)"
    )


def negotiated(
    url: str,
    minimum: ssl.TLSVersion,
    *,
    verify: bool = True,
    cafile: Path | None = None,
    timeout: float = 10.0,
) -> str:
    """The protocol an ``https://`` endpoint negotiates (``TLSv1.3``), from a test
    connection that sends no request; raises OSError (ssl.SSLError) on failure."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = parsed.port or 443
    context = client_context(minimum, verify=verify, cafile=cafile)
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return tls.version() or "unknown"
