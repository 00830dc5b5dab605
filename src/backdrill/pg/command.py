"""Run PostgreSQL programs: argv built here, secrets only in the environment, stderr
streamed into the log, and one clear PostgresError on failure (Barman's
``command_wrappers``). Children run in their own session so a Ctrl-C on the terminal
reaches backdrill alone, which then stops them in order.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Self

from backdrill.runtime.errors import PostgresError
from backdrill.runtime.interrupts import in_cleanup
from backdrill.runtime.redact import SECRETS

log = logging.getLogger(__name__)

PIPE_SIZE = 1 << 20

#: the children running now, so that an interrupt can stop those worker threads started
_running: set[Child] = set()
_running_lock = threading.Lock()


def terminate_running() -> None:
    """SIGTERM every running child's process group (an interrupt of a parallel run: each
    worker thread then sees its child fail, cleans up and stops it for good), except
    those a clean-up started (``pg_ctl stop``), which must run to their end."""
    with _running_lock:
        children = list(_running)
    for child in children:
        if child.proc.poll() is None and not child.cleanup:
            child._signal_group(signal.SIGTERM)


class Child:
    """A running program whose stderr is collected (last lines) and logged at debug."""

    def __init__(
        self,
        argv: Sequence[str | Path],
        *,
        env: Mapping[str, str] | None = None,
        stdin: int | IO[bytes] | None = subprocess.DEVNULL,
        stdout: int | IO[bytes] | None = subprocess.PIPE,
        cwd: Path | None = None,
        user: str | None = None,
        what: str | None = None,
        chatter: Callable[[str], bool] | None = None,
    ) -> None:
        """``chatter``: called with each stderr line; True when the line is progress
        (``--verbose``), which is then neither an error line nor kept in the tail."""
        self.argv = [str(a) for a in argv]
        self._chatter = chatter
        self.what = what or Path(self.argv[0]).name
        self.cleanup = in_cleanup()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=200)
        self.error_lines: list[str] = []
        try:
            self.proc = subprocess.Popen(
                self.argv,
                env=dict(env) if env is not None else None,
                stdin=stdin,
                stdout=stdout,
                stderr=subprocess.PIPE,
                cwd=cwd,
                user=user,
                start_new_session=True,
                # a 1 MiB pipe (the default maximum) lets pg_dump run ahead of the reader
                pipesize=PIPE_SIZE if stdout == subprocess.PIPE else -1,
            )
        except OSError as exc:
            raise PostgresError(f"cannot start {self.what}: {exc.strerror}") from None
        with _running_lock:
            _running.add(self)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = SECRETS.redact(raw.decode("utf-8", "replace").rstrip())
            if not line:
                continue
            if self._chatter is not None and self._chatter(line):
                continue
            self._stderr_tail.append(line)
            lowered = line.lower()
            if ("error" in lowered or "fatal" in lowered) and len(self.error_lines) < 1000:
                self.error_lines.append(line)
            log.debug("%s: %s", self.what, line)

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def stderr_text(self, lines: int = 20) -> str:
        self._reader.join(timeout=5)
        tail = list(self._stderr_tail)[-lines:]
        return "\n".join(tail)

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        with _running_lock:
            _running.discard(self)
        return code

    def check(self, timeout: float | None = None) -> None:
        """Wait and raise PostgresError (with the last stderr line) on non-zero exit."""
        code = self.wait(timeout)
        if code != 0:
            raise PostgresError(self.failure_message(code))

    def failure_message(self, code: int) -> str:
        tail = self.stderr_text(5).splitlines()
        detail = next((ln for ln in reversed(tail) if "error" in ln.lower()), None)
        detail = detail or (tail[-1] if tail else "no message")
        how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
        return f"{self.what} {how}: {detail}"

    def stop(self, grace: float = 5.0) -> None:
        """Terminate the child's whole process group (pg_restore's workers, a postmaster
        that ``pg_ctl start`` was starting), then kill it after ``grace`` seconds;
        idempotent. A child that already exited is left alone, and so is its group."""
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait()
            self._reap_group(grace)
        for stream in (self.proc.stdout, self.proc.stdin):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._reader.join(timeout=5)
        with _running_lock:
            _running.discard(self)

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.proc.pid, signum)  # its own session: the group id is its pid
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)

    def _reap_group(self, grace: float) -> None:
        """Wait for the rest of the group to go; SIGKILL what stays past ``grace``."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    what: str | None = None,
    timeout: float | None = None,
) -> str:
    """Run to completion; return stdout; raise PostgresError on failure."""
    with Child(argv, env=env, cwd=cwd, user=user, what=what) as child:
        out = child.stdout.read()
        child.check(timeout)
        return out.decode("utf-8", "replace")
