"""The HTTP side of ``serve``: a small WSGI app served by waitress.

waitress, not the standard library's ``http.server``, because a server facing a network
needs what it already does: a read timeout (an idle or half-sent request is dropped after
``read_timeout_seconds``), a cap on open connections (past it, new ones wait in the
listen backlog until one closes) and a fixed pool of worker threads. Every response
carries the security headers below; ``HEAD`` answers with the headers of ``GET`` and no
body. A client that hangs up is one log line, never a traceback.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server
from waitress.task import ErrorTask

from backdrill.runtime.errors import UsageError
from backdrill.runtime.text import terminal

log = logging.getLogger("backdrill.services.serve")

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)
#: sent only when ``serve.behind_tls`` says a TLS-terminating proxy fronts the server
#: (serve itself speaks plain HTTP; browsers ignore HSTS received over plain HTTP)
HSTS = ("Strict-Transport-Security", "max-age=31536000")

#: a route: GET/HEAD -> (status code, content type, body)
Route = Callable[[], tuple[int, str, bytes]]

_REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class HttpSettings:
    read_timeout_seconds: int = 30
    connection_limit: int = 100
    threads: int = 4
    behind_tls: bool = False


class WsgiApp:
    """``GET`` and ``HEAD`` on the given paths; 404 elsewhere, 405 for other methods."""

    def __init__(self, routes: dict[str, Route], *, behind_tls: bool) -> None:
        self.routes = routes
        self.headers = [*SECURITY_HEADERS, *([HSTS] if behind_tls else [])]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", ""))
        path = str(environ.get("PATH_INFO", ""))
        extra: list[tuple[str, str]] = []
        route = self.routes.get(path)
        if route is None:
            names = " or ".join(sorted(self.routes))
            code, ctype, body = 404, "text/plain", f"not found: try {names}\n".encode()
        elif method not in ("GET", "HEAD"):
            code, ctype, body = 405, "text/plain", b"only GET and HEAD\n"
            extra.append(("Allow", "GET, HEAD"))
        else:
            try:
                code, ctype, body = route()
            except Exception as exc:  # one bad request must not stop the server
                log.error("serve: %s failed: %s", path, terminal(f"{type(exc).__name__}: {exc}"))
                code, ctype, body = 500, "text/plain", f"{type(exc).__name__}\n".encode()
        headers = [
            ("Content-Type", ctype),
            ("Content-Length", str(len(body))),
            *self.headers,
            *extra,
        ]
        start_response(f"{code} {_REASONS.get(code, 'Error')}", headers)
        return [] if method == "HEAD" else [body]


class _OneLine(logging.Handler):
    """waitress's own log records, as one line each through backdrill's logger: a socket
    error of a client that hung up is named, not dumped as a traceback."""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        level = record.levelno
        exc = record.exc_info[1] if record.exc_info else None
        if record.name == "waitress.queue":  # "Task queue depth is N": every busy moment
            level = logging.DEBUG
        elif isinstance(exc, OSError):
            text, level = f"a client hung up ({type(exc).__name__})", logging.INFO
        elif text.startswith("Client disconnected while serving"):
            return  # _Channel.handle_close has said so
        elif exc is not None:
            text = f"{text}: {type(exc).__name__}: {exc}"
        log.log(level, "serve: %s", terminal(text[:300]))


def _channel_class(headers: list[tuple[str, str]]) -> type[HTTPChannel]:
    class _ErrorTask(ErrorTask):
        """waitress's own answers (400, 413, 431, ...) carry the same headers."""

        def execute(self) -> None:
            self.response_headers = [*self.response_headers, *headers]
            super().execute()

    class _Channel(HTTPChannel):
        """One line when a client hangs up: it reset the connection, or closed it with
        its answer unsent. waitress itself closes such a connection silently."""

        error_task_class = _ErrorTask
        _closed = False
        _reset = False

        def recv(self, buffer_size: int) -> bytes:
            # waitress's recv, but a reset is remembered (it turns it into a plain EOF)
            if self.socket is None:
                return b""
            try:
                data = self.socket.recv(buffer_size)
            except ConnectionError:
                self._reset = True
                data = b""
            if not data:
                self.handle_close()
            return data

        def handle_close(self) -> None:
            if not self._closed:
                self._closed = True
                if self._reset or self.requests or self.total_outbufs_len:
                    why = "reset the connection" if self._reset else "left before its answer"
                    log.info(
                        "serve: a client hung up: %s (%s)", why, terminal(str(self.addr)[:100])
                    )
            super().handle_close()

    return _Channel


def _route_waitress_logs() -> None:
    logger = logging.getLogger("waitress")
    if not any(isinstance(h, _OneLine) for h in logger.handlers):
        logger.addHandler(_OneLine())
    logger.propagate = False
    logger.setLevel(logging.INFO)


def _ipv4(host: str, port: int) -> str:
    """A name listens on its first IPv4 address (as the standard library's server did);
    "" on every interface."""
    if not host:
        return "0.0.0.0"  # noqa: S104 - `--listen :9187` asks for every interface
    try:
        return str(socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc}") from None


class HttpServer:
    """waitress behind the interface of ``socketserver``: ``serve_forever`` in one thread,
    ``shutdown`` from another, then ``server_close``."""

    def __init__(self, app: WsgiApp, host: str, port: int, settings: HttpSettings) -> None:
        _route_waitress_logs()
        self._map: dict[int, Any] = {}  # waitress's socket map: its channels, by fd
        listen = f"[{host}]:{port}" if ":" in host else f"{_ipv4(host, port)}:{port}"
        try:
            server = create_server(
                app,
                map=self._map,
                listen=listen,
                threads=settings.threads,
                # waitress counts its listening socket and its wake-up pipe as connections
                connection_limit=settings.connection_limit + 2,
                channel_timeout=settings.read_timeout_seconds,
                cleanup_interval=max(1, settings.read_timeout_seconds // 2),
                ident="backdrill",
                expose_tracebacks=False,
            )
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise UsageError(f"cannot listen on {host}:{port}: {reason}") from None
        if not isinstance(server, BaseWSGIServer) or server.socket is None:  # one address
            server.close()
            raise UsageError(f"cannot listen on {host}:{port}: more than one address")
        server.channel_class = _channel_class(app.headers)
        self._server = server
        self._loop_timeout = float(server.adj.asyncore_loop_timeout)
        self._stop = threading.Event()
        self._stopped = threading.Event()
        bound = server.socket.getsockname()
        self.server_address: tuple[str, int] = (str(bound[0]), int(bound[1]))

    def serve_forever(self) -> None:
        self._stopped.clear()
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=self._loop_timeout, map=self._map, count=1)
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        self._stop.set()
        self._server.pull_trigger()
        self._stopped.wait(timeout=30)

    def server_close(self) -> None:
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        wasyncore.close_all(self._map)
