"""Run the real CLI, in-process (fast) or as a subprocess (argv and signals)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from backdrill.cli.app import main
from backdrill.pg.connection import ConnParams


@dataclass
class Repo:
    url: str
    storage: dict[str, Any] = field(default_factory=dict)

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def errors(self) -> list[str]:
        """The error records of a ``--log-format json`` run (raw lines)."""
        return [ln for ln in self.err.splitlines() if '"level": "error"' in ln]

    @property
    def error_records(self) -> list[dict[str, Any]]:
        """The error records of a ``--log-format json`` run, parsed."""
        return [json.loads(ln) for ln in self.errors]


def write_config(
    path: Path,
    pg: ConnParams,
    repo: Repo,
    *,
    databases: list[str] | str | None = None,
    password_in_file: bool = True,
    **sections: Any,
) -> Path:
    postgres: dict[str, Any] = {
        "host": pg.host,
        "port": pg.port,
        "user": pg.user,
        "sslmode": "disable",
    }
    if databases is not None:
        postgres["databases"] = databases
    if pg.password is not None and password_in_file:
        secret = path.parent / "pg_password"
        secret.write_text(pg.password + "\n")
        postgres["password_file"] = str(secret)
    doc: dict[str, Any] = {"postgres": postgres, "storage": {"url": repo.url, **repo.storage}}
    for key, value in sections.items():
        doc[key] = value
    path.write_text(yaml.safe_dump(doc))
    return path


SSOT_FILE = Path(__file__).resolve().parents[2] / "ops" / "ssot" / "system_design_map.yaml"


def repo_config(path: Path, repo: Repo, *, ssot: bool = False, **sections: Any) -> Path:
    """A configuration of a repository (and ``sections``) with no PostgreSQL connection,
    for the commands that only read or write the repository; ``ssot`` copies the
    project's SSOT file beside it and names it."""
    doc: dict[str, Any] = {"storage": {"url": repo.url, **repo.storage}, **sections}
    if ssot:
        shutil.copy(SSOT_FILE, path.parent / "ssot.yaml")
        doc["ssot"] = "ssot.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    capsys.readouterr()
    code = main(["--log-format", "json", *args])
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def run_cli_process(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, log_format: str = "json"
) -> Result:
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "backdrill", "--log-format", log_format, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run_cli_script(script: str, *args: str, timeout: float = 300) -> Result:
    """``python -c SCRIPT --log-format json ARGS``: the CLI run by a script that probes
    the process around it (the script runs backdrill itself, with ``sys.argv[1:]``)."""
    proc = subprocess.run(
        [sys.executable, "-c", script, "--log-format", "json", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def start_cli_process(
    config: Path, *args: str, stdout: int = subprocess.PIPE
) -> subprocess.Popen[str]:
    """``python -m backdrill --log-format json --config CONFIG ARGS`` started and not
    waited for (to signal or race it): stderr piped, text mode."""
    return subprocess.Popen(
        [sys.executable, "-m", "backdrill", "--log-format", "json", "--config", str(config), *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_cli_limited(
    *args: str, file_size: int | None = None, env: dict[str, str] | None = None
) -> tuple[Result, int]:
    """The CLI as ``python -m backdrill`` in a subprocess whose files cannot grow past
    ``file_size`` bytes (RLIMIT_FSIZE); the result and the child's peak RSS in bytes.

    The peak is the child's own (``VmHWM`` of its memory after exec, read as it exits):
    ``ru_maxrss`` would include this pytest process's size at the fork, which grows with
    the tests that ran before."""
    import resource
    import tempfile

    def limits() -> None:
        if file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

    full_env = dict(os.environ)
    full_env.update(env or {})
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile() as peak,
    ):
        full_env["BACKDRILL_TEST_PEAK_FILE"] = peak.name
        proc = subprocess.Popen(
            [sys.executable, "-c", _PEAK_WRAPPER, "--log-format", "json", *args],
            stdout=out,
            stderr=err,
            env=full_env,
            preexec_fn=limits,  # noqa: PLW1509 - the limit is the point
        )
        proc.wait()
        out.seek(0)
        err.seek(0)
        result = Result(proc.returncode, out.read().decode(), err.read().decode())
        peak_kib = Path(peak.name).read_text().strip()
    assert peak_kib.isdigit(), f"the child did not report its peak memory: {result.err}"
    return result, int(peak_kib) * 1024


#: ``python -m backdrill`` that writes its peak RSS (KiB, VmHWM) to a file when it exits
_PEAK_WRAPPER = """
import atexit, os, runpy, sys

def _peak():
    with open("/proc/self/status") as status:
        hwm = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(os.environ["BACKDRILL_TEST_PEAK_FILE"], "w") as out:
        out.write(hwm)

atexit.register(_peak)
sys.argv = ["backdrill", *sys.argv[1:]]
runpy.run_module("backdrill", run_name="__main__", alter_sys=True)
"""


def run_cli_pty(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Result:
    """``python -m backdrill`` with stdout and stderr on a pseudo-terminal (progress bars
    on): the exit code and everything the terminal received, raw (escape codes kept),
    in ``out``."""
    import select
    import time

    full_env = dict(os.environ)
    full_env.update({"TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"})
    full_env.update(env or {})
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "backdrill", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=full_env,
        close_fds=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return Result(code, b"".join(chunks).decode("utf-8", "replace"), "")


@dataclass
class Cli:
    """The in-process CLI bound to one configuration file, given once:
    ``cli = Cli(capsys, config)`` then ``cli("backup", "db")``."""

    capsys: pytest.CaptureFixture[str]
    config: Path

    def __call__(self, *args: str) -> Result:
        return run_cli(self.capsys, "--config", str(self.config), *args)


@dataclass
class SampleCli:
    """Writes the configuration most tests start from (one database, the shared sample
    unless told another; ``local_repo`` unless told another repository; plus
    ``sections``) at one path and binds the CLI to it: ``cli = sample_cli()`` then
    ``cli("backup", "db")``. ``drilling`` adds drills reporting to ``reports`` and
    working in the test's ``work_dir``."""

    capsys: pytest.CaptureFixture[str]
    pg: ConnParams
    path: Path
    repo: Repo
    reports: Path
    shared_database: Callable[[], str]
    work_dir: Callable[[], Path]

    def __call__(
        self, repo: Repo | None = None, *, database: str | None = None, **sections: Any
    ) -> Cli:
        config = write_config(
            self.path,
            self.pg,
            repo or self.repo,
            databases=[database or self.shared_database()],
            **sections,
        )
        return Cli(self.capsys, config)

    def drilling(
        self,
        repo: Repo | None = None,
        *,
        database: str | None = None,
        drill: dict[str, Any] | None = None,
        **sections: Any,
    ) -> Cli:
        where = {"report_dir": str(self.reports), "work_dir": str(self.work_dir())}
        return self(repo, database=database, drill={**where, **(drill or {})}, **sections)
