"""Retries of transient faults: exponential backoff with jitter, bounded by a number of
attempts and a total time, each retry logged with its attempt number.

Generic: the caller says which exceptions are transient (storage/s3_errors.py knows boto's,
pg/connection.py knows libpq's); everything else propagates at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Defaults ride out a 10 s outage (waits 0.5, 1, 2, 4, 8 s... plus up to 0.5 s of
    jitter each) and give up on a long one after about a minute (8 attempts)."""

    attempts: int = 8
    max_seconds: float = 90.0
    base_seconds: float = 0.5
    max_wait_seconds: float = 20.0

    def for_cleanup(self, seconds: float) -> RetryPolicy:
        """The same backoff, bounded by ``seconds`` only: a clean-up after a failure
        waits that long for the store to come back."""
        attempts = max(self.attempts, 1000)
        return RetryPolicy(attempts, seconds, self.base_seconds, self.max_wait_seconds)

    def worst_case_seconds(self) -> float:
        """Upper bound of the time spent waiting between attempts (requests excluded)."""
        waits = [
            min(self.base_seconds * (2.0**n + 1.0), self.max_wait_seconds)
            for n in range(self.attempts - 1)
        ]
        return min(sum(waits), self.max_seconds)


NO_RETRY = RetryPolicy(attempts=1)


def call(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    transient: Callable[[BaseException], bool],
    what: str,
    describe: Callable[[BaseException], str] = str,
) -> T:
    """Run ``fn``; retry it while it raises a transient exception and the policy allows.

    The last exception propagates unchanged, with a note saying how many attempts were
    made (``exc.__notes__``), so callers keep their own error mapping.
    """
    started = time.monotonic()

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s failed (attempt %d of %d): %s; retrying in %.1f s",
            what,
            state.attempt_number,
            policy.attempts,
            describe(exc) if exc else "?",
            wait,
            extra={"fields": {"attempt": state.attempt_number, "max_attempts": policy.attempts}},
        )

    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.max_seconds),
        wait=wait_exponential_jitter(
            multiplier=policy.base_seconds, max=policy.max_wait_seconds, jitter=policy.base_seconds
        ),
        retry=retry_if_exception(transient),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(fn)
    except BaseException as exc:
        attempts = retrying.statistics.get("attempt_number", 1)
        if attempts > 1 and isinstance(exc, Exception):
            elapsed = time.monotonic() - started
            exc.add_note(f"gave up after {attempts} attempts in {elapsed:.0f} s")
        raise
