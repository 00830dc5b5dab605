"""Webhook notifications: one JSON event per backup (or drill) outcome.

The body carries a ``text`` field (what Slack's incoming webhooks and n8n show) and the
event's fields. Delivery is retried (tenacity) on connection errors, 429 and 5xx, for at
most ``notify.retry_seconds`` (30 s); it never raises: a webhook that stays down is a
warning in the log and leaves the command's exit code alone. The URL holds a token: it is
registered as a secret by the config and never logged. An ``https://`` receiver must
offer TLS 1.3 (or ``security -> tls_min_version``).
"""

from __future__ import annotations

import json
import logging
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential

from backdrill import __version__
from backdrill.config.model import NotifyConfig
from backdrill.config.tls import client_context, is_version_refusal, refusal_hint
from backdrill.policy.ssot import Policy
from backdrill.report.model import DrillReport
from backdrill.repository.manifest import DbManifest
from backdrill.runtime.errors import BackdrillError, Interrupted
from backdrill.runtime.redact import SECRETS
from backdrill.runtime.text import webhook
from backdrill.runtime.timeutil import human_duration, human_size, isoformat

log = logging.getLogger(__name__)

WAIT = wait_exponential(multiplier=0.5, max=8)


@dataclass(frozen=True)
class Event:
    kind: str  # "backup db", "backup files", "drill run", …
    status: str  # "success" | "failure"
    run_id: str
    host: str
    database: str | None = None
    backup_id: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_seconds: float | None = None
    raw_size: int | None = None
    stored_size: int | None = None
    recovery_point: str | None = None
    rpo_seconds: float | None = None
    rpo_target_seconds: float | None = None
    rto_seconds: float | None = None
    rto_target_seconds: float | None = None
    error: str | None = None
    exit_code: int = 0

    def text(self) -> str:
        """The message a chat shows; every field from outside escaped (``text.webhook``)."""
        kind, host, run = webhook(self.kind), webhook(self.host), webhook(self.run_id)
        subject = f"{kind} of {webhook(self.database)}" if self.database else kind
        if self.status == "failure":
            error = webhook(str(self.error))
            return f"backdrill: {subject} FAILED on {host}: {error} (run {run})"
        parts = [f"backdrill: {subject} succeeded on {host}"]
        if self.stored_size is not None:
            parts.append(f"{human_size(self.stored_size)} stored")
        if self.duration_seconds is not None:
            parts.append(f"in {human_duration(self.duration_seconds)}")
        ref = f"run {run}"
        if self.backup_id:
            ref = f"backup {webhook(self.backup_id)}, {ref}"
        return " ".join(parts) + f" ({ref})"

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"text": self.text(), "source": "backdrill"}
        body.update(asdict(self))
        body["backdrill_version"] = __version__
        return body


def backup_event(
    *,
    kind: str,
    run_id: str,
    host: str,
    policy: Policy,
    database: str | None,
    manifest: DbManifest | None = None,
    error: BackdrillError | Interrupted | None = None,
) -> Event:
    """Pure: the event of one backup outcome (a manifest on success, an error otherwise)."""
    rpo_target, rto_target = policy.rpo_hours * 3600, policy.rto_hours * 3600
    if manifest is None:
        return Event(
            kind=kind,
            status="failure",
            run_id=run_id,
            host=host,
            database=database,
            error=SECRETS.redact(str(error)) if error else "unknown error",
            exit_code=error.exit_code if error else 1,
            rpo_target_seconds=rpo_target,
            rto_target_seconds=rto_target,
        )
    return Event(
        kind=kind,
        status="success",
        run_id=run_id,
        host=host,
        database=manifest.database,
        backup_id=manifest.id,
        started_at=isoformat(manifest.started_at),
        finished_at=isoformat(manifest.finished_at),
        duration_seconds=round((manifest.finished_at - manifest.started_at).total_seconds(), 3),
        raw_size=manifest.raw_size,
        stored_size=manifest.stored_size,
        recovery_point=isoformat(manifest.created_at),
        rpo_target_seconds=rpo_target,
        rto_target_seconds=rto_target,
    )


def drill_event(report: DrillReport, *, exit_code: int) -> Event:
    """Pure: the event of a finished drill (pass or fail), from its report."""
    failed = [c for c in report.checks if c.status == "fail"]
    missed = [
        f"{name} missed"
        for name, part in (("RPO", report.rpo), ("RTO", report.rto))
        if part is not None and not part.met
    ]
    problems = [f"{c.name}: {c.detail}" for c in failed] + missed
    if report.error:
        problems.insert(0, report.error)
    return Event(
        kind="drill run",
        status="success" if report.result == "pass" else "failure",
        run_id=report.run_id,
        host=report.host,
        database=report.backup.database if report.backup else None,
        backup_id=report.backup.id if report.backup else None,
        started_at=isoformat(report.started_at),
        finished_at=isoformat(report.finished_at),
        duration_seconds=round((report.finished_at - report.started_at).total_seconds(), 3),
        stored_size=report.backup.size_bytes if report.backup else None,
        recovery_point=isoformat(report.backup.created_at) if report.backup else None,
        rpo_seconds=report.rpo.achieved_seconds if report.rpo else None,
        rpo_target_seconds=report.rpo.target_seconds if report.rpo else None,
        rto_seconds=report.rto.achieved_seconds if report.rto else None,
        rto_target_seconds=report.rto.target_seconds if report.rto else None,
        error=SECRETS.redact("; ".join(problems)) if problems else None,
        exit_code=exit_code,
    )


def wanted(config: NotifyConfig, event: Event) -> bool:
    return config.webhook_url is not None and event.status in config.on


class _Retry(Exception):
    """A delivery attempt that may succeed later (connection error, 429, 5xx)."""


class _TlsRefused(Exception):
    """The receiver offers no TLS version at or above the minimum: never retried."""


def post_json(
    url: str,
    body: dict[str, Any],
    *,
    retry_seconds: float,
    timeout: float,
    tls_min: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
) -> int:
    """POST ``body``; return the number of attempts. Raises _Retry or HTTPError when
    the budget is spent or the receiver refuses for good (4xx), _TlsRefused when it
    offers only TLS below ``tls_min``."""
    data = json.dumps(body, default=str).encode()
    context = client_context(tls_min)
    start = time.monotonic()

    def stop(state: RetryCallState) -> bool:
        # stop unless the next attempt can start within the budget
        return time.monotonic() - start + WAIT(state) >= retry_seconds

    attempts = 0
    for attempt in Retrying(
        stop=stop, wait=WAIT, retry=retry_if_exception_type(_Retry), reraise=True
    ):
        with attempt:
            attempts += 1
            remaining = max(0.5, retry_seconds - (time.monotonic() - start))
            request = urllib.request.Request(  # noqa: S310 - the operator's configured URL
                url,
                data=data,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": f"backdrill/{__version__}",
                },
            )
            try:
                with urllib.request.urlopen(  # noqa: S310
                    request, timeout=min(timeout, remaining), context=context
                ) as resp:
                    resp.read()
            except urllib.error.HTTPError as exc:
                if exc.code == 429 or exc.code >= 500:
                    raise _Retry(f"HTTP {exc.code}") from None
                raise
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, ssl.SSLError) and is_version_refusal(str(reason)):
                    raise _TlsRefused(refusal_hint()) from None
                raise _Retry(str(reason)) from None
    return attempts


def send(
    config: NotifyConfig, event: Event, *, tls_min: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
) -> bool:
    """Deliver ``event`` if the config asks for it; True when delivered. Never raises."""
    if not wanted(config, event):
        return False
    assert config.webhook_url is not None
    url = config.webhook_url.get_secret_value()
    SECRETS.add(url)  # the config registers it too; a NotifyConfig built elsewhere may not
    try:
        attempts = post_json(
            url,
            event.payload(),
            retry_seconds=config.retry_seconds,
            timeout=config.timeout_seconds,
            tls_min=tls_min,
        )
    except _TlsRefused as exc:
        log.warning("webhook notification failed: %s", exc)
        return False
    except urllib.error.HTTPError as exc:
        log.warning("webhook notification failed: the receiver answered HTTP %s", exc.code)
        return False
    except _Retry as exc:
        log.warning(
            "webhook notification failed after %.0f s of retries: %s",
            config.retry_seconds,
            SECRETS.redact(str(exc)),
        )
        return False
    except Exception as exc:  # a notification must never fail the command
        log.warning("webhook notification failed: %s", SECRETS.redact(type(exc).__name__))
        return False
    log.info(
        "webhook notified",
        extra={"fields": {"event": event.kind, "status": event.status, "attempts": attempts}},
    )
    return True
