"""A port on 127.0.0.1 that refuses every connection, without a close-then-rebind race:
the socket stays bound (so no other server can take the port) and never listens."""

from __future__ import annotations

import functools
import socket


@functools.cache
def _held_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock  # held for the session: bound, never listening, so connections are refused


def refusing_port() -> int:
    return int(_held_socket().getsockname()[1])
