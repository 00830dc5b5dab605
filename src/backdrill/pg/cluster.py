"""A throwaway PostgreSQL cluster: ``initdb`` + ``pg_ctl`` in a fresh temporary directory,
on a random loopback port and a private socket directory, with a random password.

Used by the local drill sandbox, by ``make demo`` and by the tests. When backdrill runs
as root the server runs as an unprivileged user (initdb refuses root).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Self

from backdrill.pg import command
from backdrill.pg.connection import ConnParams
from backdrill.runtime.errors import SandboxError
from backdrill.runtime.interrupts import cleaning_up, raise_if_received
from backdrill.runtime.redact import SECRETS

log = logging.getLogger(__name__)

#: settings for a disposable server tuned for restore speed: no durability at all
RESTORE_TUNING: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "maintenance_work_mem": "512MB",
    "shared_buffers": "256MB",
    "autovacuum": "off",
    "max_parallel_maintenance_workers": "2",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unprivileged_user() -> str | None:
    """The user the server runs as: None when not root, else BACKDRILL_SANDBOX_USER,
    ``postgres`` or ``nobody``."""
    if os.geteuid() != 0:
        return None
    for name in (os.environ.get("BACKDRILL_SANDBOX_USER"), "postgres", "nobody"):
        if not name:
            continue
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise SandboxError("running as root and no unprivileged user (postgres, nobody) exists")


class LocalCluster:
    """Context manager: ``with LocalCluster(bin_dir) as c: c.params`` ..."""

    def __init__(
        self,
        bin_dir: Path,
        *,
        base_dir: Path | None = None,
        tuning: dict[str, str] | None = None,
        superuser: str = "postgres",
    ) -> None:
        self.bin_dir = bin_dir
        self.base_dir = base_dir
        self.tuning = RESTORE_TUNING if tuning is None else tuning
        self.superuser = superuser
        self.password = secrets.token_urlsafe(24)
        self.run_as = unprivileged_user()
        self.root: Path | None = None
        self.port = 0
        self.started = False
        SECRETS.add(self.password)

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None
        return self.root / "sock"

    @property
    def params(self) -> ConnParams:
        return ConnParams(
            host="127.0.0.1",
            port=self.port,
            user=self.superuser,
            password=self.password,
            sslmode="disable",
            dbname="postgres",
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port} (socket {self.socket_dir})"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        if self.run_as:
            env["HOME"] = str(self.root)
        return env

    def _chown(self, path: Path) -> None:
        if self.run_as:
            shutil.chown(path, self.run_as, self.run_as)

    def start(self) -> Self:
        parent = str(self.base_dir) if self.base_dir else None
        self.root = Path(tempfile.mkdtemp(prefix="backdrill-pg-", dir=parent))
        try:
            raise_if_received()  # started in a thread after the signal: nothing to do
            self._initdb()
            self._start_server()
        except BaseException:
            self.stop()
            raise
        return self

    def _initdb(self) -> None:
        assert self.root is not None
        self._chown(self.root)
        self.socket_dir.mkdir(mode=0o700)
        self._chown(self.socket_dir)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile)
        try:
            self._run_as_owner(
                [
                    self.bin_dir / "initdb",
                    "-D",
                    self.data_dir,
                    "-U",
                    self.superuser,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                    "--no-instructions",
                ],
                what="initdb",
                timeout=300,
            )
        except Exception as exc:
            raise SandboxError(f"cannot create a throwaway cluster: {exc}") from None
        finally:
            pwfile.unlink(missing_ok=True)
        conf = [f"{k} = '{v}'" for k, v in self.tuning.items()]
        conf += [
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.socket_dir}'",
            "logging_collector = off",
        ]
        with (self.data_dir / "postgresql.conf").open("a") as fh:
            fh.write("\n# backdrill throwaway cluster\n" + "\n".join(conf) + "\n")

    def _start_server(self) -> None:
        assert self.root is not None
        logfile = self.root / "postgres.log"
        last_error = ""
        for _attempt in range(5):
            raise_if_received()  # a start stopped by an interrupt is not tried again
            self.port = free_port()
            try:
                self._run_as_owner(
                    [
                        self.bin_dir / "pg_ctl",
                        "start",
                        "-D",
                        self.data_dir,
                        "-l",
                        logfile,
                        "-w",
                        "-t",
                        "60",
                        "-o",
                        f"-p {self.port}",
                    ],
                    what="pg_ctl start",
                    timeout=90,
                )
                self.started = True
                return
            except Exception as exc:
                last_error = str(exc)
                with contextlib.suppress(OSError):
                    last_error += " " + logfile.read_text()[-300:]
        raise SandboxError(f"cannot start the throwaway cluster: {last_error.strip()}")

    def _run_as_owner(self, argv: list[str | Path], *, what: str, timeout: float) -> None:
        """Run a server program (initdb, pg_ctl) in the cluster's root as its owner."""
        command.run(
            argv, env=self._env(), cwd=self.root, user=self.run_as, what=what, timeout=timeout
        )

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Stop the server (immediate) and delete every file; safe to call twice; a
        signal arriving meanwhile is raised after the clean-up, and its ``pg_ctl stop``
        is not terminated with the running programs."""
        with cleaning_up():
            self._stop()

    def stop_command(self) -> str:
        """The shell command an operator runs to stop this server by hand (a kept
        sandbox): pg_ctl by its full path, as the user the server runs as (pg_ctl
        refuses root)."""
        return stop_command(self.bin_dir, self.data_dir, self.run_as)

    def _stop(self) -> None:
        if self.root is None:
            return
        pid = self._postmaster_pid()
        if pid is not None:
            with contextlib.suppress(Exception):
                self._run_as_owner(
                    [
                        self.bin_dir / "pg_ctl",
                        "stop",
                        "-D",
                        self.data_dir,
                        "-m",
                        "immediate",
                        "-w",
                        "-t",
                        "30",
                    ],
                    what="pg_ctl stop",
                    timeout=40,
                )
            _kill_if_alive(pid)
        # a postmaster whose ``pg_ctl start`` was stopped before it wrote its pid file
        for stray in _processes_naming(self.data_dir):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(stray, signal.SIGQUIT)  # its own session (pg_ctl's setsid)
            _kill_if_alive(stray, wait=5.0)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
        self.started = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_command(bin_dir: Path, data_dir: Path, run_as: str | None) -> str:
    """Pure: ``pg_ctl stop`` of ``data_dir``, through ``runuser`` when the server runs as
    another user than the caller (root), every word quoted for the shell."""
    words = [str(bin_dir / "pg_ctl"), "stop", "-D", str(data_dir)]
    if run_as is not None:
        words = ["runuser", "-u", run_as, "--", *words]
    return shlex.join(words)


def _processes_naming(path: Path) -> list[int]:
    """The processes with ``path`` as one of their arguments (``-D DATA_DIR``), read
    from /proc (none where there is no /proc)."""
    wanted = os.fsencode(path)
    found = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                args = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if wanted in args:
                found.append(int(entry.name))
    return found


def _kill_if_alive(pid: int, wait: float = 10.0) -> None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
