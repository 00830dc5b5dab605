"""When neither worker of `backup db --all --parallel N` wants a CPU, and why (issue 17).

The set-up of benchmarks/many_databases.py; each run is the child of
benchmarks/profile_many_databases.py (its phases recorded per thread on
CLOCK_MONOTONIC) under `perf record` of the scheduler's events, system-wide. From
them, every task of the run (the backdrill process and its threads, pg_dump, the
PostgreSQL backends forked meanwhile and the postmaster) is, at each instant, on a CPU,
runnable (waiting for one: the machine's load) or asleep. The run's wall time is cut by
how many of its tasks want a CPU (running or runnable): with 2 cores, every moment when
fewer than 2 do is a core the run leaves unused whatever the load. Those moments are
attributed to what each worker thread was doing (its innermost phase) and why it slept
(the kernel function, or the library call, it blocked in).

`--before SRC` runs an older tree's `src` (on PYTHONPATH) in the same session, the
runs alternated. Needs `perf` with scheduler tracepoints (root).
Usage: `.venv/bin/python -m benchmarks.timeline_many_databases [--parallel 2] [--before SRC]`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backdrill.pg import binaries
from backdrill.pg.cluster import LocalCluster
from benchmarks.many_databases import make_databases
from benchmarks.profile_many_databases import server_cpu

EVENTS = ["sched_switch", "sched_waking", "sched_wakeup_new", "sched_process_fork"]
_LINE = re.compile(r"^\s*(?P<comm>.*?)\s+(?P<tid>\d+)\s+(?P<time>\d+\.\d+):\s+sched:(?P<ev>\w+):")
_FIELD = re.compile(r"(\w+)=(\S+)")
#: kernel functions that say what a task waits for, most specific first
WAITS = [
    ("fsync", ("ext4_sync_file", "jbd2", "do_fsync", "file_write_and_wait")),
    ("futex (a lock, a thread, the GIL)", ("futex",)),
    ("fork/exec/exit/wait", ("do_wait", "kernel_clone", "exit_mmap", "do_exit", "bprm_execve")),
    ("pipe", ("pipe_read", "pipe_write")),
    ("socket (libpq <-> backend)", ("unix_stream", "tcp_", "sock_", "sk_wait")),
    ("pg wait (latch)", ("WaitEventSetWait", "WaitLatch")),
    ("poll/select/epoll", ("do_sys_poll", "do_select", "ep_poll", "do_epoll_wait")),
    ("sleep", ("hrtimer_nanosleep", "do_nanosleep", "clock_nanosleep")),
    ("file system", ("ext4_", "filemap_", "path_", "do_unlinkat", "do_renameat")),
]


@dataclass
class Task:
    tid: int
    comm: str
    owner: str  # backdrill, child (pg_dump), server
    state: str = "S"  # R running, W runnable, S asleep
    since: float = 0.0
    why: str = ""  # the last sleep's reason
    running: float = 0.0
    runnable: float = 0.0
    slept: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # by reason


def classify(stack: list[str]) -> str:
    for name, needles in WAITS:
        if any(frame.startswith(needles) or frame.endswith(needles) for frame in stack):
            return name
    return next((f for f in stack if "schedule" not in f), "?")


def read_perf(data: Path) -> list[tuple[float, str, int, dict[str, str], list[str]]]:
    """(time, event, tid, fields, callchain) of every recorded event, in time order."""
    fields = "comm,tid,time,event,trace,ip,sym"
    text = subprocess.run(
        ["perf", "script", "-i", str(data), "-F", fields, "--ns"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    out: list[tuple[float, str, int, dict[str, str], list[str]]] = []
    for block in text.split("\n\n"):
        lines = block.strip("\n").splitlines()
        if not lines or (head := _LINE.match(lines[0])) is None:
            continue
        stack = [ln.split(None, 1)[1].split("+")[0] for ln in lines[1:] if len(ln.split()) > 1]
        trace = dict(_FIELD.findall(lines[0][head.end() :]))
        out.append((float(head["time"]), head["ev"], int(head["tid"]), trace, stack))
    return out


class Timeline:
    """The run's tasks replayed through the scheduler's events: how many want a CPU at
    each instant, and what the workers did while fewer than ``cores`` did."""

    def __init__(self, run: dict[str, Any], postmaster: int, cores: int) -> None:
        self.start, self.end, self.cores = run["started"], run["ended"], cores
        self.tasks = {postmaster: Task(postmaster, "postmaster", "server")}
        self.tasks[run["pid"]] = Task(run["pid"], "python", "backdrill")
        # the workers' phases: per thread, (start, end, phase) of every call
        self.phases: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
        self.names: dict[int, str] = {}
        for phase, tid, name, t0, t1 in run["events"]:
            self.phases[tid].append((t0, t1, phase))
            self.names[tid] = name
        self.workers = sorted(
            t for t, n in self.names.items() if n.startswith("each") or n == "MainThread"
        )
        self.wanting = 0
        self.histogram: dict[int, float] = defaultdict(float)
        self.unused: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.last = self.start

    def innermost(self, tid: int, moment: float) -> str:
        calls = [c for c in self.phases.get(tid, []) if c[0] <= moment <= c[1]]
        return min(calls, key=lambda c: c[1] - c[0])[2] if calls else "(no phase)"

    def account(self, now: float) -> None:
        """The interval since the last event: its count of tasks wanting a CPU; when
        fewer than the cores, the unused core-seconds by each worker's phase and wait."""
        lo, hi = max(self.last, self.start), min(now, self.end)
        if hi > lo:
            self.histogram[min(self.wanting, self.cores)] += hi - lo
            if self.wanting < self.cores:
                for tid in self.workers:
                    task = self.tasks.get(tid)
                    why = task.why if task and task.state == "S" else "on CPU / runnable"
                    what = f"{self.innermost(tid, (lo + hi) / 2)} | {why}"
                    self.unused[self.names[tid]][what] += (hi - lo) * (self.cores - self.wanting)
        self.last = now

    def move(self, task: Task, state: str, now: float) -> None:
        if task.state == state:
            return
        if task.state == "R":
            task.running += now - task.since
        elif task.state == "W":
            task.runnable += now - task.since
        elif self.start <= task.since and now <= self.end:
            task.slept[task.why] += now - task.since
        self.wanting += (state in "RW") - (task.state in "RW")
        task.state, task.since = state, now

    def event(self, now: float, ev: str, trace: dict[str, str], stack: list[str]) -> None:
        self.account(now)
        if ev == "sched_process_fork":
            parent, child = int(trace["pid"]), int(trace["child_pid"])
            if parent in self.tasks:
                owner = self.tasks[parent].owner
                self.tasks[child] = Task(child, trace.get("child_comm", "?"), owner, "S", now)
        elif ev in ("sched_waking", "sched_wakeup_new"):
            if (task := self.tasks.get(int(trace["pid"]))) is not None and task.state == "S":
                self.move(task, "W", now)
        elif ev == "sched_switch":
            if (task := self.tasks.get(int(trace["prev_pid"]))) is not None:
                if task.owner == "backdrill" and trace["prev_comm"].startswith("pg_"):
                    task.owner = "child"  # pg_dump after its exec
                asleep = not trace["prev_state"].startswith("R")
                if asleep:
                    task.why = classify(stack)
                self.move(task, "S" if asleep else "W", now)
            if (task := self.tasks.get(int(trace["next_pid"]))) is not None:
                self.move(task, "R", now)

    def result(self) -> dict[str, Any]:
        self.account(self.end)
        cpu: dict[str, float] = defaultdict(float)
        wait: dict[str, float] = defaultdict(float)
        slept: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for task in self.tasks.values():
            cpu[task.owner] += task.running
            wait[task.owner] += task.runnable
            kind = slept[self.names.get(task.tid, task.owner).rstrip("0123456789_")]
            for why, seconds in task.slept.items():
                kind[why] += seconds
        return {
            "wall": self.end - self.start,
            "wanting": dict(self.histogram),
            "cpu": dict(cpu),
            "runnable": dict(wait),
            "unused": {w: _largest(c, 12) for w, c in self.unused.items()},
            "slept": {k: _largest(c, 8) for k, c in slept.items()},
        }


def _largest(seconds: dict[str, float], count: int) -> dict[str, float]:
    return dict(sorted(seconds.items(), key=lambda kv: -kv[1])[:count])


def analyse(
    events: list[tuple[float, str, int, dict[str, str], list[str]]],
    run: dict[str, Any],
    postmaster: int,
    cores: int,
) -> dict[str, Any]:
    timeline = Timeline(run, postmaster, cores)
    for now, ev, _tid, trace, stack in events:
        timeline.event(now, ev, trace, stack)
    return timeline.result()


def report(label: str, result: dict[str, Any], cores: int, server: float) -> None:
    wall = result["wall"]
    print(f"\n== {label}: CLI wall {wall:.2f} s")
    shown = ", ".join(f"{k} {v:.2f}" for k, v in sorted(result["cpu"].items()))
    print(f"on CPU (s): {shown}; server (postmaster's children, /proc): {server:.2f}")
    shown = ", ".join(f"{k} {v:.2f}" for k, v in sorted(result["runnable"].items()))
    print(f"runnable, waiting for a core (the load; s): {shown}")
    for n in range(cores + 1):
        seconds = result["wanting"].get(str(n), result["wanting"].get(n, 0.0))
        print(f"  {n}{'+' if n == cores else ''} tasks want a CPU: {seconds:6.2f} s")
    unused = sum((cores - n) * s for n, s in ((int(k), v) for k, v in result["wanting"].items()))
    print(f"core-seconds left unused: {unused:.2f} of {cores * wall:.2f}")
    print("asleep (s), by task kind and reason:")
    for kind, rows in sorted(result["slept"].items()):
        print(f"  {kind}: " + ", ".join(f"{why} {sec:.2f}" for why, sec in rows.items()))
    for worker, rows in sorted(result["unused"].items()):
        print(f"  {worker}: unused core-seconds by its phase | why it slept")
        for what, seconds in rows.items():
            print(f"    {seconds:6.2f}  {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", type=int, default=50)
    parser.add_argument("--rows", type=int, default=2000, help="rows per table")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--before", type=Path, default=None, help="an older tree's src")
    parser.add_argument("--keep", type=Path, default=None, help="keep the results here")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    initdb = sorted(binaries.find_all("initdb"), key=lambda p: p.major)[-1]
    work = Path(tempfile.mkdtemp(prefix="backdrill-timeline-many-"))
    work.chmod(0o755)
    trees: list[tuple[str, Path | None]] = [("after", None)]
    if args.before is not None:
        trees.insert(0, ("before", args.before.resolve()))
    root = Path(__file__).resolve().parent.parent
    try:
        with LocalCluster(initdb.bin_dir, tuning={"fsync": "off"}) as cluster:
            params = cluster.params
            make_databases(params, args.databases, args.rows)
            postmaster = cluster._postmaster_pid()
            assert postmaster is not None
            config = work / "config.yaml"
            config.write_text(
                "postgres:\n"
                f"  host: {params.host}\n  port: {params.port}\n  user: {params.user}\n"
                "  sslmode: disable\n"
                f"storage:\n  url: file://{work / 'repo'}\n"
            )
            for round_ in range(args.rounds):
                for label, src in trees:
                    env = {**os.environ, **params.child_env()}
                    if src is not None:
                        env["PYTHONPATH"] = str(src)
                    shutil.rmtree(work / "repo", ignore_errors=True)
                    out, data = work / f"{label}.json", work / f"{label}.perf"
                    argv = ["perf", "record", "-q", "-a", "-g", "-k", "CLOCK_MONOTONIC"]
                    argv += [a for e in EVENTS for a in ("-e", f"sched:{e}")]
                    argv += ["-o", str(data), "--", sys.executable, "-m"]
                    argv += ["benchmarks.profile_many_databases", "--child", str(out), "--"]
                    argv += ["--config", str(config), "backup", "db", "--all"]
                    argv += ["--parallel", str(args.parallel)]
                    load = os.getloadavg()[0]
                    before = server_cpu(cluster)
                    subprocess.run(argv, env=env, cwd=root, check=True, capture_output=True)
                    server = server_cpu(cluster) - before
                    run = json.loads(out.read_text())
                    result = analyse(read_perf(data), run, postmaster, cores)
                    title = f"{label}, --parallel {args.parallel}, round {round_ + 1}"
                    report(
                        f"{title}, load {load:.1f}-{os.getloadavg()[0]:.1f}", result, cores, server
                    )
                    if args.keep is not None:
                        args.keep.mkdir(parents=True, exist_ok=True)
                        shutil.copy(out, args.keep / f"{label}-{round_}.json")
                        shutil.copy(data, args.keep / f"{label}-{round_}.perf")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
