"""The storage faults both backup fault suites inject through the proxy (``backup db``
in test_storage_faults.py, ``backup files`` in test_files_faults.py), each made once."""

from __future__ import annotations

from helpers.s3proxy import FaultProxy, Rule


def five_errors(proxy: FaultProxy, status: int, code: str, method: str, contains: str) -> Rule:
    """The next five matching requests answered with an S3 error."""
    return proxy.add(
        Rule("error", method=method, contains=contains, times=5, status=status, code=code)
    )


def resets_mid_part(proxy: FaultProxy) -> Rule:
    """The connection reset twice while the second part is sent."""
    return proxy.add(Rule("reset", method="PUT", contains="partNumber=2", times=2))


def outage_from_part_two(proxy: FaultProxy, seconds: float) -> Rule:
    """Every request refused for ``seconds`` from the second part's upload on."""
    return proxy.add(Rule("down", method="PUT", contains="partNumber=2", seconds=seconds))
