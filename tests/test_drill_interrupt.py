"""A drill interrupted while its sandbox starts exits at once: the ``initdb`` or
``pg_ctl start`` running is stopped, not waited for (nor retried), and the half-started
sandbox is removed, its postmaster stopped if one came up."""

from __future__ import annotations

import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml

from backdrill.sample.odoo import SampleInfo
from helpers.backed import BackUp
from helpers.cli import Repo, start_cli_process
from helpers.processes import processes_naming
from helpers.waiting import wait_until

#: how long the wrapped program sleeps: far longer than a prompt exit may take
SLOW_SECONDS = 8
PROMPT_SECONDS = 5

#: the wrapped start, in shell: ``$real`` is the real program; ``--version`` is never slow
SLOW_STEPS = {
    # initdb sleeps before it runs: the interrupt comes while the cluster is created
    "initdb": 'sleep {slow}; exec "$real" "$@"',
    # pg_ctl start sleeps after the postmaster came up, before backdrill sees it started
    "pg_ctl": 'if [ "$1" = start ]; then "$real" "$@" || exit $?; sleep {slow}; exit 0; fi\n'
    'exec "$real" "$@"',
    # the postmaster sleeps before it runs: pg_ctl start is stopped before the server
    # wrote its postmaster.pid (pg_ctl, a copy, runs the postgres beside it)
    "postgres": 'sleep {slow}; exec "$real" "$@"',
}
#: the program copied, not wrapped, for it to run the slow one from the same directory
COPIED = {"postgres": "pg_ctl"}


@pytest.fixture
def slow_bin_dir(pg_bin_dir: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A ``postgres -> bin_dir`` of the real programs, the one named by the test's
    parameter wrapped to be slow (under /tmp: the server's unprivileged user runs it)."""
    slow: str = request.param
    bin_dir = Path(tempfile.mkdtemp(prefix="backdrill-test-bin-"))
    bin_dir.chmod(0o755)
    for program in pg_bin_dir.iterdir():
        # scripts, not symlinks: the programs are looked for by their resolved path
        wrapper = bin_dir / program.name
        if COPIED.get(slow) == program.name:
            shutil.copy2(program, wrapper)
            continue
        step = SLOW_STEPS[slow] if program.name == slow else 'exec "$real" "$@"'
        wrapper.write_text(
            f'#!/bin/sh\nreal="{program}"\n'
            f'case "$1" in --version|-V) exec "$real" "$1" ;; esac\n'
            f"{step.format(slow=SLOW_SECONDS)}\n"
        )
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    yield bin_dir
    shutil.rmtree(bin_dir, ignore_errors=True)


def _sleeping(proc: psutil.Process) -> bool:
    """The wrapped program sleeps in a child of ``proc``."""
    try:
        return any(c.name() == "sleep" for c in proc.children(recursive=True))
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("slow_bin_dir", sorted(SLOW_STEPS), indirect=True)
def test_a_drill_interrupted_while_its_sandbox_starts_exits_at_once_leaving_nothing(
    back_up: BackUp, shared_sample: SampleInfo, local_repo: Repo, slow_bin_dir: Path
) -> None:
    backed = back_up(local_repo, shared_sample.database)
    doc = yaml.safe_load(backed.config.read_text())
    doc["postgres"]["bin_dir"] = str(slow_bin_dir)
    backed.config.write_text(yaml.safe_dump(doc))
    proc = start_cli_process(backed.config, "drill", "run")
    me = psutil.Process(proc.pid)
    try:
        wait_until(lambda: _sleeping(me) or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, f"never slow: {proc.communicate()[1][-3000:]}"
        children = me.children(recursive=True)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=SLOW_SECONDS * 4)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    print(f"exited {took:.2f} s after SIGTERM")
    assert proc.returncode == 143, err[-3000:]
    assert took < PROMPT_SECONDS, f"took {took:.1f} s to exit: {err[-3000:]}"
    alive = [c.name() for c in children if c.is_running() and c.status() != "zombie"]
    assert alive == [], f"left running: {alive}"
    assert processes_naming({backed.work, slow_bin_dir}) == []
    assert list(backed.work.iterdir()) == []
