"""``serve``: ``GET /health`` and ``GET /metrics`` over the standard library's threading
HTTP server. The repository is listed at most once per ``cache_seconds`` however many
requests arrive; the status is re-evaluated against the clock on every request, so
``/health`` turns 503 the moment the last backup ages past the RPO.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from backdrill.config import Config
from backdrill.errors import ExternalServiceError, UsageError
from backdrill.metrics import build_registry, render
from backdrill.redact import SECRETS
from backdrill.services.facts import RepoFacts, gather
from backdrill.services.status import State, StatusReport, evaluate_config
from backdrill.ssot import policy
from backdrill.storage import Storage
from backdrill.timeutil import utcnow

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


def _handler(app: HealthApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "backdrill"
        sys_version = ""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/health":
                    code, body = app.health()
                    self._send(code, "application/json", body)
                elif path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, app.metrics())
                else:
                    self._send(404, "text/plain", b"not found: try /health or /metrics\n")
            except Exception as exc:  # one bad request must not stop the server
                log.exception("serve: %s failed", path)
                self._send(500, "text/plain", f"{type(exc).__name__}\n".encode())

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("serve: " + format, *args)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_server(listen: tuple[str, int], app: HealthApp) -> ThreadingHTTPServer:
    host, port = listen
    cls = _Server6 if ":" in host else _Server
    try:
        return cls((host, port), _handler(app))
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
