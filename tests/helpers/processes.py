"""The processes of this machine that a test looks for by what their command line names."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import psutil


def processes_naming(paths: Iterable[Path]) -> list[str]:
    """``pid: command line`` of every process whose command line names one of ``paths``
    (a sandbox's data directory, a wrapper's bin directory...)."""
    wanted = [str(p) for p in paths]
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if any(p in cmd for p in wanted):
            found.append(f"{proc.info['pid']}: {cmd[:200]}")
    return found


def names(pid: int, path: Path) -> bool:
    """Whether process ``pid`` names ``path`` in its command line (gone: no)."""
    try:
        return str(path) in " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False
