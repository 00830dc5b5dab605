"""The test helpers that replace fixed sleeps and close-then-rebind ports do what they
claim: a wait ends at once when its condition holds and fails at its deadline; the
refusing port refuses."""

from __future__ import annotations

import socket
import time

import pytest

from helpers.ports import refusing_port
from helpers.waiting import wait_until


def test_wait_until_returns_as_soon_as_the_condition_holds() -> None:
    calls = [0]

    def third_call() -> bool:
        calls[0] += 1
        return calls[0] >= 3

    started = time.monotonic()
    wait_until(third_call, timeout=10)
    assert calls[0] == 3
    assert time.monotonic() - started < 5


def test_wait_until_fails_at_its_deadline_naming_what_it_waited_for() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"not true within 0\.2 s: the moon"):
        wait_until(lambda: False, timeout=0.2, what="the moon")
    assert 0.2 <= time.monotonic() - started < 5


def test_the_refusing_port_refuses_and_stays_the_same() -> None:
    port = refusing_port()
    assert port == refusing_port()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
