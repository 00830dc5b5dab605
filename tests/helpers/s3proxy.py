"""A fault-injecting HTTP proxy between boto3 and the moto server, on 127.0.0.1.

Rules match requests (method, a substring of the path+query) and apply an action a
bounded number of times: answer an S3 error (``times`` = the next N matching requests),
reset the connection before answering, cut it mid-response body, delay, truncate or
corrupt the response body, or be down for a while (from now, or from the first
matching request: ``Rule("down", contains="partNumber=2", seconds=10)``).
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlparse

Action = Literal["error", "reset", "cut", "delay", "truncate", "flip", "down"]


@dataclass
class Rule:
    action: Action
    method: str | None = None
    contains: str | None = None
    times: int = 1
    status: int = 503
    code: str = "ServiceUnavailable"
    seconds: float = 0.0
    until: float = 0.0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.action == "down":
            if self.until == 0.0 and self.times > 0 and self._selects(method, path):
                self.until = time.monotonic() + self.seconds  # triggered by this request
            return time.monotonic() < self.until
        if self.times <= 0:
            return False
        return self._selects(method, path)

    def _selects(self, method: str, path: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        return self.contains is None or self.contains in path


@dataclass
class FaultProxy:
    upstream: str
    rules: list[Rule] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add(self, rule: Rule) -> Rule:
        with self.lock:
            self.rules.append(rule)
        return rule

    def go_down(self, seconds: float) -> Rule:
        """Every request fails (connection reset) for ``seconds`` from now."""
        return self.add(Rule("down", until=time.monotonic() + seconds, times=0))

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def take(self, method: str, path: str) -> Rule | None:
        with self.lock:
            self.requests.append((method, path))
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.times -= 1
                    rule.hits += 1
                    return rule
        return None

    def start(self) -> FaultProxy:
        proxy = self
        upstream = urlparse(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                body = self._body()
                rule = proxy.take(self.command, self.path)
                if rule is not None and rule.action in ("down", "reset"):
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    self.connection.close()
                    self.close_connection = True
                    return
                if rule is not None and rule.action == "error":
                    xml = (
                        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{rule.code}"
                        f"</Code><Message>injected fault</Message></Error>"
                    ).encode()
                    self.send_response(rule.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(xml)))
                    self.end_headers()
                    self.wfile.write(xml)
                    return
                if rule is not None and rule.action == "delay":
                    time.sleep(rule.seconds)
                conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if rule is not None and rule.action == "flip" and data:
                    middle = len(data) // 2
                    data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
                declared = len(data)
                if self.command == "HEAD":  # no body: pass the object's length through
                    declared = int(resp.getheader("Content-Length") or 0)
                if rule is not None and rule.action in ("truncate", "cut"):
                    data = data[: len(data) // 2]
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(declared))
                self.end_headers()
                self.wfile.write(data)
                if rule is not None and rule.action == "cut":
                    self.wfile.flush()
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    self.connection.close()
                if rule is not None and rule.action in ("truncate", "cut"):
                    self.close_connection = True
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
