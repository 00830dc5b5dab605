"""A local HTTP receiver for webhook tests: answers with scripted status codes and keeps
every request body."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(
        self, codes: list[int] | None = None, path: str = "/hooks/T0/B0/s3cr3t-t0ken"
    ) -> None:
        self.codes = list(codes or [])  # answered in order; 200 once exhausted
        self.path = path
        self.requests: list[dict[str, Any]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                code = receiver.codes.pop(0) if receiver.codes else 200
                receiver.requests.append(
                    {"path": self.path, "body": body, "type": self.headers["Content-Type"]}
                )
                receiver.answers.append(code)
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"

    def accepted(self) -> list[dict[str, Any]]:
        return [
            r["body"] for r, code in zip(self.requests, self.answers, strict=True) if code < 300
        ]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
