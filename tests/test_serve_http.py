"""``serve`` facing a network: HEAD, read timeout, connection cap, clients that hang up,
security headers on every response."""

from __future__ import annotations

import http.client
import logging
import shutil
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backdrill.config.loading import load_config
from backdrill.services.serve import HealthApp, RepositoryCache, make_server
from backdrill.services.serve_http import HttpServer, HttpSettings
from backdrill.storage.local import LocalStorage
from helpers.seed import write_drill, write_manifest, write_snapshot
from helpers.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent
H = timedelta(hours=1)
SECURITY = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

Start = Callable[..., tuple[HttpServer, int]]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Start a server on a repository whose last backup is ``age`` old."""
    servers: list[HttpServer] = []

    def _start(age: timedelta = 2 * H, **settings: object) -> tuple[HttpServer, int]:
        repo = tmp_path / f"repo{len(servers)}"
        now = datetime.now(UTC)
        write_manifest(repo, "odoo", now - age)
        write_snapshot(repo, "odoo", now - 2 * H)
        write_drill(repo, now - 24 * H, rpo_seconds=3600, rto_seconds=60)
        shutil.copy(REPO / "ops/ssot/system_design_map.yaml", tmp_path / "ssot.yaml")
        path = tmp_path / "backdrill.yaml"
        path.write_text(
            f"ssot: ssot.yaml\nstorage: {{url: 'file://{repo}'}}\n"
            "postgres: {databases: [odoo]}\nfiles: {source: /var/lib/odoo/filestore/odoo}\n"
        )
        cache = RepositoryCache(LocalStorage(repo), load_config(path), cache_seconds=60)
        extra = {"settings": HttpSettings(**settings)} if settings else {}  # type: ignore[arg-type]
        server = make_server(("127.0.0.1", 0), HealthApp(cache), **extra)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, server.server_address[1]

    yield _start
    for server in servers:
        server.shutdown()
        server.server_close()


def request(port: int, method: str, path: str, timeout: float = 30) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request(method, path)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def body_of(port: int, method: str, path: str) -> tuple[int, bytes, dict[str, str]]:
    """Raw bytes after the headers: ``http.client`` would not read a HEAD body at all."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _sep, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return int(status.split()[1]), body, headers


@pytest.mark.parametrize("path", ["/health", "/metrics"])
@pytest.mark.parametrize(("age", "code"), [(2 * H, 200), (30 * H, 503)])
def test_head_answers_with_the_headers_of_get_and_no_body(
    start: Start, path: str, age: timedelta, code: int
) -> None:
    _server, port = start(age)
    get_code, get_body, get_headers = body_of(port, "GET", path)
    head_code, head_body, head_headers = body_of(port, "HEAD", path)
    expected = code if path == "/health" else 200  # /metrics reports the state, always 200
    assert (get_code, head_code) == (expected, expected), get_body
    assert get_body and head_body == b""
    assert head_headers["Content-Type"] == get_headers["Content-Type"]
    assert int(head_headers["Content-Length"]) > 0


def test_every_response_carries_the_security_headers(start: Start) -> None:
    _server, port = start(30 * H)
    seen = set()
    for method, path in [
        ("GET", "/health"),
        ("HEAD", "/health"),
        ("GET", "/metrics"),
        ("GET", "/nope"),
        ("POST", "/health"),
    ]:
        resp = request(port, method, path)
        seen.add(resp.status)
        for name, value in SECURITY.items():
            assert resp.getheader(name) == value, (method, path, name)
        assert resp.getheader("Strict-Transport-Security") is None  # plain HTTP
    assert seen == {503, 200, 404, 405}
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:  # waitress's 400
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 400 ")
    for name, value in SECURITY.items():
        assert f"{name}: {value}\r\n" in answer, answer


def test_hsts_only_when_configured_behind_tls(start: Start) -> None:
    _server, port = start(behind_tls=True)
    resp = request(port, "GET", "/health")
    assert resp.getheader("Strict-Transport-Security") == "max-age=31536000"


@pytest.mark.slow
def test_a_client_that_sends_nothing_is_disconnected_after_the_read_timeout(
    start: Start,
) -> None:
    _server, port = start(read_timeout_seconds=1)
    with socket.create_connection(("127.0.0.1", port), timeout=15) as idle:
        began = time.monotonic()
        idle.sendall(b"GET /health HTTP/1.1\r\n")  # half a request, then silence
        assert idle.recv(1024) == b""  # closed by the server, not timed out here
        waited = time.monotonic() - began
    assert 0.9 <= waited < 10


@pytest.mark.slow
def test_connections_past_the_cap_wait_until_one_closes(start: Start) -> None:
    server, port = start(connection_limit=2)
    idle = [socket.create_connection(("127.0.0.1", port), timeout=15) for _ in range(2)]
    channels = server._server.active_channels  # waitress's accepted connections, by fd
    wait_until(lambda: len(channels) >= 2, timeout=15, what="both connections accepted")
    try:
        with pytest.raises(TimeoutError):
            request(port, "GET", "/health", timeout=2)
    finally:
        for sock in idle:
            sock.close()
    assert request(port, "GET", "/health", timeout=15).status == 200


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """What backdrill logs at INFO and above while the test runs (and only to here: an
    earlier in-process CLI run leaves a handler on a closed stream)."""
    kept: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record)

    logger = logging.getLogger("backdrill")
    old_handlers, old_level = logger.handlers[:], logger.level
    logger.handlers = [Keep(level=logging.INFO)]
    logger.setLevel(logging.DEBUG)
    yield kept
    logger.handlers = old_handlers
    logger.setLevel(old_level)


@pytest.mark.slow
def test_a_client_that_hangs_up_early_is_one_line_and_no_traceback(
    start: Start, capfd: pytest.CaptureFixture[str], records: list[logging.LogRecord]
) -> None:
    _server, port = start()
    clients = 20
    for _ in range(clients):
        sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, before the answer is read

    def hung_up_lines() -> list[str]:
        return [r.getMessage() for r in records if "hung up" in r.getMessage()]

    wait_until(lambda: len(hung_up_lines()) >= clients, timeout=30, what="every hang-up logged")
    assert request(port, "GET", "/health").status == 200  # still serving
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert not [r for r in records if r.exc_info], [r.getMessage() for r in records]
    hung_up = [r.getMessage() for r in records if "hung up" in r.getMessage()]
    assert len(hung_up) == clients, hung_up  # one line each
    assert all("\n" not in line for line in hung_up)


def test_a_busy_server_logs_nothing_per_request(
    start: Start, records: list[logging.LogRecord]
) -> None:
    _server, port = start(threads=1)
    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(lambda _i: request(port, "GET", "/metrics").status, range(100)))
    assert codes == [200] * 100
    assert [r.getMessage() for r in records] == []


def test_a_host_name_listens_on_its_first_ipv4_address(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "repo")
    shutil.copy(REPO / "ops/ssot/system_design_map.yaml", tmp_path / "ssot.yaml")
    path = tmp_path / "backdrill.yaml"
    path.write_text(f"ssot: ssot.yaml\nstorage: {{url: 'file://{tmp_path / 'repo'}'}}\n")
    server = make_server(
        ("localhost", 0), HealthApp(RepositoryCache(storage, load_config(path), 60))
    )
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()
