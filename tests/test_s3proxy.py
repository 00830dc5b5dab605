"""Self-tests of the fault-injecting proxy: each rule does what the fault tests rely on."""

from __future__ import annotations

import time

import pytest
import requests

from conftest import s3_client
from helpers.s3proxy import FaultProxy, Rule
from helpers.waiting import wait_until

pytestmark = pytest.mark.reliability
BODY = bytes(range(256)) * 64


@pytest.fixture
def obj_url(fault_proxy: FaultProxy, s3_endpoint: str, bucket: str) -> str:
    """A presigned GET of an object, through the proxy."""
    s3_client(s3_endpoint).put_object(Bucket=bucket, Key="k", Body=BODY)  # type: ignore[attr-defined]
    return _presign(fault_proxy, bucket, "get_object")


def _presign(proxy: FaultProxy, bucket: str, op: str) -> str:
    client = s3_client(proxy.url)
    return str(client.generate_presigned_url(op, Params={"Bucket": bucket, "Key": "k"}))  # type: ignore[attr-defined]


def test_proxy_passes_requests_through_unchanged(obj_url: str) -> None:
    assert requests.get(obj_url, timeout=10).content == BODY


def test_proxy_error_rule_answers_the_next_n_matching_requests(
    fault_proxy: FaultProxy, obj_url: str
) -> None:
    rule = fault_proxy.add(Rule("error", method="GET", times=2, status=503, code="SlowDown"))
    first, second, third = (requests.get(obj_url, timeout=10) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert b"<Code>SlowDown</Code>" in first.content
    assert rule.hits == 2


def test_proxy_reset_rule_resets_the_connection(fault_proxy: FaultProxy, obj_url: str) -> None:
    fault_proxy.add(Rule("reset", method="GET"))
    with pytest.raises(requests.ConnectionError):
        requests.get(obj_url, timeout=10)
    assert requests.get(obj_url, timeout=10).content == BODY


def test_proxy_cut_and_truncate_rules_send_half_the_declared_body(
    fault_proxy: FaultProxy, obj_url: str
) -> None:
    for action in ("cut", "truncate"):
        fault_proxy.add(Rule(action, method="GET"))  # type: ignore[arg-type]
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(obj_url, timeout=10).content  # noqa: B018
    assert requests.get(obj_url, timeout=10).content == BODY


def test_proxy_flip_rule_changes_exactly_one_byte(fault_proxy: FaultProxy, obj_url: str) -> None:
    fault_proxy.add(Rule("flip", method="GET"))
    data = requests.get(obj_url, timeout=10).content
    assert len(data) == len(BODY)
    assert sum(a != b for a, b in zip(data, BODY, strict=True)) == 1


def test_proxy_delay_rule_delays(fault_proxy: FaultProxy, obj_url: str) -> None:
    fault_proxy.add(Rule("delay", method="GET", seconds=0.5))
    started = time.monotonic()
    assert requests.get(obj_url, timeout=10).content == BODY
    assert time.monotonic() - started >= 0.5


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=10).content == BODY
    except requests.ConnectionError:
        return False


def test_proxy_down_for_seconds_then_up_again(fault_proxy: FaultProxy, obj_url: str) -> None:
    fault_proxy.go_down(0.6)
    with pytest.raises(requests.ConnectionError):
        requests.get(obj_url, timeout=10)
    wait_until(lambda: _answers(obj_url), timeout=10, what="the proxy is up again")
    assert requests.get(obj_url, timeout=10).content == BODY


def test_proxy_down_rule_triggered_by_a_matching_request(
    fault_proxy: FaultProxy, obj_url: str, bucket: str
) -> None:
    head_url = _presign(fault_proxy, bucket, "head_object")
    fault_proxy.add(Rule("down", method="GET", contains="/k", seconds=0.6))
    assert requests.head(head_url, timeout=10).status_code == 200  # not the trigger
    with pytest.raises(requests.ConnectionError):
        requests.get(obj_url, timeout=10)
    with pytest.raises(requests.ConnectionError):
        requests.head(head_url, timeout=10)  # everything is down now
    wait_until(lambda: _answers(obj_url), timeout=10, what="the proxy is up again")
    assert requests.get(obj_url, timeout=10).content == BODY
