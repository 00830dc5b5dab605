"""TLS for tests: a self-signed certificate for 127.0.0.1 (openssl), and a
TLS-terminating TCP proxy whose highest protocol version is chosen, in front of a
plain-HTTP server (moto)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlparse


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate (and its key) valid for 127.0.0.1, for a day."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


class TlsProxy:
    """``https://127.0.0.1:port`` -> the plain ``target`` URL; offers TLS up to
    ``maximum`` only."""

    def __init__(self, target: str, cert: Path, key: str | Path, maximum: ssl.TLSVersion) -> None:
        parsed = urlparse(target)
        self._target = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._context.maximum_version = maximum
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = int(self._server.getsockname()[1])
        self.handshakes = 0
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(30)
        try:
            tls = self._context.wrap_socket(client, server_side=True)
        except (OSError, ssl.SSLError):
            with contextlib.suppress(OSError):
                client.close()
            return
        self.handshakes += 1
        upstream = socket.create_connection(self._target)
        _relay(tls, upstream)

    def close(self) -> None:
        """Stop accepting (``with contextlib.closing(TlsProxy(...)) as proxy``)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._server.close()


def _relay(tls: ssl.SSLSocket, upstream: socket.socket) -> None:
    """Both directions in ONE thread: an SSL socket must not be read in one thread while
    another writes to it (OpenSSL objects are not thread-safe; two pump threads made a
    request arrive mangled now and then)."""
    with selectors.DefaultSelector() as selector:
        selector.register(tls, selectors.EVENT_READ)
        selector.register(upstream, selectors.EVENT_READ)
        try:
            while True:
                # data OpenSSL already decrypted is not seen by select()
                ready = [tls] if tls.pending() else [k.fileobj for k, _ in selector.select(30)]
                if not ready:
                    return  # idle for 30 s
                for source in ready:
                    assert isinstance(source, socket.socket)
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is tls else tls).sendall(data)
        except OSError:
            pass
        finally:
            for sock in (tls, upstream):
                with contextlib.suppress(OSError):
                    sock.close()
