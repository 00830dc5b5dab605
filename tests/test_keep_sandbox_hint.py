"""``drill run --keep-sandbox`` prints how to stop the kept server; the command it
prints works as printed, also as root (pg_ctl refuses root: it runs as the server's
user)."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from backdrill.pg.cluster import stop_command
from backdrill.sample.odoo import SampleInfo
from helpers.cli import SampleCli


def test_the_stop_command_runs_pg_ctl_as_the_server_user_when_root() -> None:
    assert stop_command(Path("/b in"), Path("/d"), None) == "'/b in/pg_ctl' stop -D /d"
    assert stop_command(Path("/b"), Path("/d"), "postgres") == (
        "runuser -u postgres -- /b/pg_ctl stop -D /d"
    )


def test_the_printed_stop_hint_stops_a_kept_sandbox(
    sample_cli: SampleCli, sample: SampleInfo
) -> None:
    cli = sample_cli.drilling(database=sample.database)
    assert cli("backup", "db").code == 0
    drill = cli("drill", "run", "--keep-sandbox")
    assert drill.code == 0, drill.err
    match = re.search(r"stop it with: (.+), then rm -r (\S+)\)", drill.out)
    assert match, drill.out
    command, root = match.group(1), Path(match.group(2))
    port = int(re.search(r"port=(\d+)", drill.out).group(1))  # type: ignore[union-attr]
    pid_file = next(root.rglob("postmaster.pid"))
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        stopped = subprocess.run(  # the words a shell would run (the hint is shlex-quoted)
            shlex.split(command), capture_output=True, text=True, timeout=60, check=False
        )
        assert stopped.returncode == 0, (command, stopped.stderr)
        assert not pid_file.exists()
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # nobody listens any more
    finally:
        if pid_file.exists():  # the hint failed: stop it the hard way
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        shutil.rmtree(root, ignore_errors=True)
