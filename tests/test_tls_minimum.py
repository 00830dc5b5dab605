"""TLS 1.3 minimum on every connection backdrill opens with TLS: PostgreSQL (psycopg and
the pg_dump child's environment), S3 (through a TLS-terminating proxy in front of moto)
and webhooks; lowered only by ``security -> tls_min_version``, which is flagged."""

from __future__ import annotations

import contextlib
import shutil
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from backdrill.config.model import NotifyConfig
from backdrill.monitoring.notify import Event, send
from backdrill.pg.cluster import LocalCluster, unprivileged_user
from backdrill.pg.connection import ConnParams
from backdrill.runtime.errors import PostgresError
from conftest import S3_KEY_ID, S3_SECRET
from helpers.cli import Cli, run_cli
from helpers.tls import TlsProxy, make_cert


@pytest.fixture(scope="module")
def cert_dir() -> Iterator[Path]:
    """Certificate and key readable by the server's unprivileged user."""
    directory = Path(tempfile.mkdtemp(prefix="backdrill-tls-"))
    directory.chmod(0o755)
    cert, key = make_cert(directory)
    key.chmod(0o600)
    user = unprivileged_user()
    if user:
        for path in (cert, key):
            shutil.chown(path, user, user)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_cluster(pg_bin_dir: Path, cert_dir: Path) -> Iterator[LocalCluster]:
    """A server with TLS on, capped at TLS 1.2 (tests raise the cap to 1.3)."""
    tuning = {
        "fsync": "off",
        "ssl": "on",
        "ssl_cert_file": str(cert_dir / "server.crt"),
        "ssl_key_file": str(cert_dir / "server.key"),
        "ssl_min_protocol_version": "TLSv1.2",
        "ssl_max_protocol_version": "TLSv1.2",
    }
    with LocalCluster(pg_bin_dir, tuning=tuning) as cluster:
        yield cluster


def cap(cluster: LocalCluster, version: str) -> None:
    """Set the server's highest TLS version and reload (over a plain connection)."""
    with cluster.params.connect() as conn:
        conn.execute(f"ALTER SYSTEM SET ssl_max_protocol_version = '{version}'")
        conn.execute("SELECT pg_reload_conf()")
    # the reload is asynchronous: wait until a new backend sees it
    for _ in range(100):
        with cluster.params.connect() as conn:
            row = conn.execute("SHOW ssl_max_protocol_version").fetchone()
        if row is not None and row[0] == version:
            return
    pytest.fail(f"ssl_max_protocol_version did not become {version}")


def tls_params(cluster: LocalCluster, minimum: str = "TLSv1.3") -> ConnParams:
    plain = cluster.params
    return ConnParams(
        host=plain.host,
        port=plain.port,
        user=plain.user,
        password=plain.password,
        sslmode="require",
        ssl_min_protocol_version=minimum,
    )


def pg_config(path: Path, cluster: LocalCluster, **sections: Any) -> Path:
    secret = path.parent / "pg_password"
    secret.write_text(f"{cluster.password}\n")
    doc: dict[str, Any] = {
        "postgres": {
            "host": "127.0.0.1",
            "port": cluster.port,
            "user": cluster.superuser,
            "password_file": str(secret),
            "sslmode": "require",
        },
        "storage": {"url": f"file://{path.parent / 'repo'}"},
        **sections,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def check_lines(out: str, *names: str) -> dict[str, str]:
    """``config check``'s table: the line of each check named, by name."""
    return {name: line for line in out.splitlines() for name in names if name in line}


def rows(out: str) -> dict[str, str]:
    return check_lines(out, "postgres reachable", "postgres TLS", "storage TLS", "tls minimum")


def test_postgres_capped_at_tls12_is_refused_naming_tls13_and_the_setting(
    tls_cluster: LocalCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cap(tls_cluster, "TLSv1.2")
    with pytest.raises(PostgresError) as raised:
        tls_params(tls_cluster).connect()
    message = str(raised.value)
    assert "TLS 1.3" in message
    assert "security -> tls_min_version" in message
    assert tls_cluster.password not in message

    result = run_cli(
        capsys, "--config", str(pg_config(tmp_path / "c.yaml", tls_cluster)), "config", "check"
    )
    assert result.code == 1
    line = rows(result.out)["postgres reachable"]
    assert "FAIL" in line

    # pg_dump and pg_restore get the minimum through their environment
    env = tls_params(tls_cluster).child_env()
    assert env["PGSSLMINPROTOCOLVERSION"] == "TLSv1.3"
    dump = subprocess.run(
        [str(tls_cluster.bin_dir / "pg_dump"), "--schema-only"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert dump.returncode != 0
    assert "protocol version" in dump.stderr.lower()


def test_lowering_the_minimum_to_tls12_connects_and_is_flagged(
    tls_cluster: LocalCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cap(tls_cluster, "TLSv1.2")
    config = pg_config(tmp_path / "c.yaml", tls_cluster, security={"tls_min_version": "1.2"})
    cli = Cli(capsys, config)
    result = cli("config", "check")
    assert result.code == 0, result.out + result.err
    found = rows(result.out)
    assert "TLSv1.2 negotiated" in found["postgres TLS"]
    assert "WARNING" in found["tls minimum"]
    assert "below the standard minimum TLS 1.3" in result.out


def test_postgres_offering_tls13_connects_and_config_check_shows_it(
    tls_cluster: LocalCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cap(tls_cluster, "TLSv1.3")
    with tls_params(tls_cluster).connect() as conn:
        row = conn.execute(
            "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).fetchone()
    assert row == ("TLSv1.3",)
    result = run_cli(
        capsys, "--config", str(pg_config(tmp_path / "c.yaml", tls_cluster)), "config", "check"
    )
    assert result.code == 0, result.out + result.err
    found = rows(result.out)
    assert "TLSv1.3 negotiated" in found["postgres TLS"]
    assert "WARNING" not in found["tls minimum"]


# -- S3 --------------------------------------------------------------------------------


def plain_pg(pg: ConnParams, directory: Path) -> dict[str, Any]:
    """The shared test server, over a plain connection (TLS not in use)."""
    secret = directory / "pg_password"
    secret.write_text(f"{pg.password}\n")
    return {
        "host": pg.host,
        "port": pg.port,
        "user": pg.user,
        "password_file": str(secret),
        "sslmode": "disable",
    }


def s3_config(
    path: Path, pg: ConnParams, endpoint: str, bucket: str, cert: Path, **sections: Any
) -> Path:
    doc: dict[str, Any] = {
        "postgres": plain_pg(pg, path.parent),
        "storage": {
            "url": f"s3://{bucket}/prod",
            "endpoint_url": endpoint,
            "region": "us-east-1",
            "access_key_id": S3_KEY_ID,
            "secret_access_key": S3_SECRET,
            "ca_bundle": str(cert),
            "retry": {"attempts": 1, "max_seconds": 5},
        },
        **sections,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def storage_lines(out: str) -> dict[str, str]:
    return check_lines(out, "bucket reachable", "bucket writable", "storage TLS", "tls minimum")


@pytest.mark.parametrize(
    ("maximum", "security", "works", "negotiated"),
    [
        (ssl.TLSVersion.TLSv1_2, {}, False, None),
        (ssl.TLSVersion.TLSv1_2, {"tls_min_version": "1.2"}, True, "TLSv1.2"),
        (ssl.TLSVersion.TLSv1_3, {}, True, "TLSv1.3"),
    ],
)
def test_s3_endpoint_below_tls13_is_refused_unless_allowed(
    maximum: ssl.TLSVersion,
    security: dict[str, str],
    works: bool,
    negotiated: str | None,
    s3_endpoint: str,
    bucket: str,
    pg: ConnParams,
    cert_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cert = cert_dir / "server.crt"
    proxy = TlsProxy(s3_endpoint, cert, cert_dir / "server.key", maximum)
    with contextlib.closing(proxy):
        sections = {"security": security} if security else {}
        config = s3_config(tmp_path / "c.yaml", pg, proxy.url, bucket, cert, **sections)
        result = run_cli(capsys, "--config", str(config), "config", "check")
    found = storage_lines(result.out)
    if works:
        assert "FAIL" not in found["bucket reachable"], result.out
        assert "FAIL" not in found["bucket writable"], result.out
        assert f"{negotiated} negotiated" in found["storage TLS"]
        assert ("WARNING" in found["tls minimum"]) == bool(security)
    else:
        assert "FAIL" in found["bucket reachable"]
        assert "FAIL" in found["storage TLS"]
        text = " ".join(result.out.split())
        assert "TLS 1.3" in text
        assert 'security -> tls_min_version: "1.2"' in text
        assert S3_SECRET not in result.out + result.err


def test_s3_client_context_is_tightened(s3_endpoint: str) -> None:
    from backdrill.config.model import S3Options
    from backdrill.storage.s3_client import make_client

    client = make_client(S3Options(endpoint_url=s3_endpoint))
    context = client._endpoint.http_session._manager.connection_pool_kw["ssl_context"]
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    proxy_context = client._endpoint.http_session._get_ssl_context()
    assert proxy_context.minimum_version == ssl.TLSVersion.TLSv1_3
    lowered = make_client(S3Options(endpoint_url=s3_endpoint), tls_min=ssl.TLSVersion.TLSv1_2)
    lowered_context = lowered._endpoint.http_session._manager.connection_pool_kw["ssl_context"]
    assert lowered_context.minimum_version == ssl.TLSVersion.TLSv1_2


# -- webhooks --------------------------------------------------------------------------


class HttpsReceiver:
    def __init__(self, cert_dir: Path, maximum: ssl.TLSVersion) -> None:
        self.bodies: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_dir / "server.crt", cert_dir / "server.key")
        context.maximum_version = maximum
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}/hooks/T0/s3cr3t-t0ken"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


EVENT = Event(kind="backup db", status="failure", run_id="r1", host="h", error="boom")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("maximum", "tls_min", "delivered"),
    [
        (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3, False),
        (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2, True),
        (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3, True),
    ],
)
def test_webhook_below_tls13_is_refused_at_once_unless_allowed(
    maximum: ssl.TLSVersion,
    tls_min: ssl.TLSVersion,
    delivered: bool,
    cert_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_dir / "server.crt"))
    receiver = HttpsReceiver(cert_dir, maximum)
    try:
        config = NotifyConfig(webhook_url=receiver.url, retry_seconds=20)
        assert send(config, EVENT, tls_min=tls_min) is delivered
    finally:
        receiver.close()
    assert len(receiver.bodies) == (1 if delivered else 0)
    if not delivered:
        text = " ".join(r.getMessage() for r in caplog.records)
        assert "TLS 1.3" in text
        assert "tls_min_version" in text
        assert "s3cr3t-t0ken" not in text


def test_config_check_shows_the_webhook_tls(
    pg: ConnParams,
    cert_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_dir / "server.crt"))
    receiver = HttpsReceiver(cert_dir, ssl.TLSVersion.TLSv1_3)
    try:
        url_file = tmp_path / "webhook_url"
        url_file.write_text(receiver.url + "\n")
        doc = {
            "postgres": plain_pg(pg, tmp_path),
            "storage": {"url": f"file://{tmp_path / 'repo'}"},
            "notify": {"webhook_url_file": str(url_file)},
        }
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(doc))
        result = run_cli(capsys, "--config", str(tmp_path / "c.yaml"), "config", "check")
    finally:
        receiver.close()
    (line,) = [ln for ln in result.out.splitlines() if "webhook TLS" in ln]
    assert "TLSv1.3 negotiated" in line
    assert "s3cr3t-t0ken" not in result.out + result.err
    assert receiver.bodies == []  # the probe sends no request
