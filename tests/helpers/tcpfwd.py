"""A TCP forwarder on 127.0.0.1 that starts listening only after a delay: a PostgreSQL
server that is "restarting" when a run begins."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class LateForwarder:
    def __init__(self, target_host: str, target_port: int, delay: float) -> None:
        # bound at once and kept (no close-then-rebind race for the port); connections
        # are refused until it listens
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._target = (target_host, target_port)
        self._delay = delay
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        time.sleep(self._delay)  # the subject: a server that is not up yet
        server = self._server
        server.listen()
        server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(self._target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()
        server.close()

    def stop(self) -> None:
        self._stop.set()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
