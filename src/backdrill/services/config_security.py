"""``config check`` rows of the security standard: the TLS minimum in force, the age of
each secret file, and the TLS version each ``https://`` endpoint negotiates (S3, webhook)
from a test connection that sends no request."""

from __future__ import annotations

import ssl
from pathlib import Path

from backdrill.config.loading import one_line
from backdrill.config.model import Config
from backdrill.config.secret_age import describe, overdue, secret_file_ages
from backdrill.config.tls import is_version_refusal, negotiated, refusal_hint
from backdrill.runtime.timeutil import utcnow
from backdrill.storage.base import ProbeResult


def security_probes(config: Config) -> list[ProbeResult]:
    sec = config.security
    deviation = sec.deviation()
    rows = [
        ProbeResult("tls minimum", True, deviation, warning=True)
        if deviation
        else ProbeResult("tls minimum", True, f"TLS {sec.tls_min_version} (the standard)")
    ]
    for age in secret_file_ages(config, utcnow()):
        rows.append(
            ProbeResult(
                f"secret age {age.key}",
                True,
                describe(age, sec.rotation_days),
                warning=overdue(age, sec.rotation_days),
            )
        )
    return rows


def _tls_row(
    name: str, url: str, config: Config, *, verify: bool, cafile: Path | None
) -> ProbeResult:
    try:
        version = negotiated(url, config.security.ssl_min, verify=verify, cafile=cafile)
    except (OSError, ValueError) as exc:
        text = one_line(str(exc))
        if isinstance(exc, ssl.SSLError) and is_version_refusal(text):
            text += f" ({refusal_hint()})"
        return ProbeResult(name, False, text)
    return ProbeResult(name, True, f"{version} negotiated")


def tls_probes(config: Config) -> list[ProbeResult]:
    """The S3 endpoint's and the webhook's negotiated TLS (``https://`` only)."""
    rows: list[ProbeResult] = []
    storage = config.storage
    if storage.url.startswith("s3://"):
        endpoint = (
            storage.endpoint_url or f"https://s3.{storage.region or 'us-east-1'}.amazonaws.com"
        )
        if endpoint.startswith("https://"):
            rows.append(
                _tls_row(
                    "storage TLS",
                    endpoint,
                    config,
                    verify=storage.verify_tls,
                    cafile=storage.ca_bundle,
                )
            )
        else:
            rows.append(ProbeResult("storage TLS", True, "not in use (http:// endpoint)"))
    url = config.notify.webhook_url
    if url is not None and url.get_secret_value().startswith("https://"):
        # the URL's path holds a token: only its host and port are used and shown
        rows.append(
            _tls_row("webhook TLS", url.get_secret_value(), config, verify=True, cafile=None)
        )
    return rows
