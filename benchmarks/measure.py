"""Wall time and peak RSS of a command, measured the same way for every contender."""

from __future__ import annotations

import statistics
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_kb: int


@dataclass
class Series:
    name: str
    runs: list[Run] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def spread(self) -> tuple[float, float]:
        return min(r.seconds for r in self.runs), max(r.seconds for r in self.runs)

    @property
    def peak_rss_mb(self) -> float:
        return max(r.peak_rss_kb for r in self.runs) / 1024


def _hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def measure(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    stdout: int | None = subprocess.DEVNULL,
    check: bool = True,
) -> Run:
    """Run ``argv``; its wall time and the peak RSS (VmHWM) of that process itself."""
    peak = 0
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(a) for a in argv],
        env=dict(env) if env else None,
        stdout=stdout,
        stderr=subprocess.PIPE,
    )
    done = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not done.is_set():
            value = _hwm_kb(proc.pid)
            if value:
                peak = max(peak, value)
            time.sleep(0.01)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    _out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    done.set()
    watcher.join()
    if check and proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {err.decode()[-2000:]}")
    return Run(elapsed, peak)
