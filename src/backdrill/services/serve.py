"""``serve``: ``GET /health`` and ``GET /metrics`` (and ``HEAD``), served by waitress
(:mod:`backdrill.services.serve_http`). The repository is listed at most once per
``cache_seconds`` however many requests arrive; the status is re-evaluated against the
clock on every request, so ``/health`` turns 503 the moment the last backup ages past the
RPO.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST

from backdrill.config.model import Config
from backdrill.monitoring.metrics import build_registry, render
from backdrill.policy.ssot import policy
from backdrill.runtime.errors import ExternalServiceError, UsageError
from backdrill.runtime.redact import SECRETS
from backdrill.runtime.timeutil import utcnow
from backdrill.services.facts import RepoFacts, gather
from backdrill.services.serve_http import HttpServer, HttpSettings, WsgiApp
from backdrill.services.status import State, StatusReport, evaluate_config
from backdrill.storage import Storage

log = logging.getLogger(__name__)


def parse_listen(value: str) -> tuple[str, int]:
    """``127.0.0.1:9187``, ``[::1]:9187``, ``:9187`` (all interfaces)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {value!r}: expected HOST:PORT, for example 127.0.0.1:9187")
    return host.strip("[]"), int(port)


class RepositoryCache:
    """The repository's facts, re-read at most once per ``cache_seconds``. Concurrent
    callers wait for the one refresh in progress instead of starting their own."""

    def __init__(
        self,
        storage: Storage,
        config: Config,
        cache_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.config = config
        self.cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._fetched: float | None = None
        self._facts: RepoFacts | None = None
        self._error: str | None = None

    def get(self) -> tuple[RepoFacts | None, str | None]:
        with self._lock:
            now = self._monotonic()
            if self._fetched is None or now - self._fetched >= self.cache_seconds:
                try:
                    self._facts, self._error = gather(self.storage, self.config), None
                except ExternalServiceError as exc:
                    self._facts, self._error = None, SECRETS.redact(str(exc))
                    log.warning("repository unreadable: %s", self._error)
                self._fetched = now
            return self._facts, self._error


class HealthApp:
    """What the HTTP handler calls: status and metrics from the cached facts."""

    def __init__(self, cache: RepositoryCache, clock: Callable[[], datetime] = utcnow) -> None:
        self.cache = cache
        self.clock = clock

    def report(self) -> tuple[StatusReport, RepoFacts | None]:
        facts, error = self.cache.get()
        now = self.clock()
        if facts is None:
            return StatusReport(checked_at=now, error=error or "not read"), None
        return evaluate_config(facts, self.cache.config, now), facts

    def health(self) -> tuple[int, bytes]:
        report, _facts = self.report()
        code = 503 if report.state == State.CRITICAL else 200
        doc = report.to_dict()
        doc["repository"] = self.cache.storage.url
        return code, json.dumps(doc, indent=2).encode() + b"\n"

    def metrics(self) -> bytes:
        report, facts = self.report()
        return render(build_registry(facts, report, policy(self.cache.config)))


def make_server(
    listen: tuple[str, int], app: HealthApp, settings: HttpSettings | None = None
) -> HttpServer:
    """The server of ``serve``: ``serve_forever()``, then ``shutdown()`` from another
    thread (or an interrupt in this one), then ``server_close()``."""
    settings = settings or HttpSettings()

    def health() -> tuple[int, str, bytes]:
        code, body = app.health()
        return code, "application/json", body

    def metrics() -> tuple[int, str, bytes]:
        return 200, CONTENT_TYPE_LATEST, app.metrics()

    routes = {"/health": health, "/metrics": metrics}
    host, port = listen
    return HttpServer(WsgiApp(routes, behind_tls=settings.behind_tls), host, port, settings)
