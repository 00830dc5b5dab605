"""Where the time of `backup db --all` goes with many small databases (issue 17): the
set-up of benchmarks/many_databases.py (a throwaway PostgreSQL, 50 databases of 3 small
tables), then one `--parallel 1` and one `--parallel 2` run, each in its own process:

- phases: the real CLI in a child process whose backdrill functions are wrapped with
  wall-clock timers (the work itself unchanged); prints, per phase, the calls, the
  summed wall seconds and the mean per database, then the run's wall time.
- py-spy (`--py-spy DIR`): the same runs under `py-spy record --subprocesses
  --format speedscope`, one profile per run in DIR (`pip install py-spy`).

Under `--parallel 2` two databases run at once, so the phases' sum exceeds the wall
time: the ratio of the two says how much of each phase overlapped.
Usage: `.venv/bin/python benchmarks/profile_many_databases.py [--databases 50] [--py-spy DIR]`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backdrill.pg.cluster import LocalCluster
from benchmarks.many_databases import bench_cluster, write_config

#: (module, attribute, phase): what each wrapped function stands for
PHASES = [
    ("backdrill.services.backup_db", "resolve_databases", "list databases (once)"),
    ("backdrill.repository.locks.RepoLock", "acquire", "lock acquire"),
    ("backdrill.repository.locks.RepoLock", "release", "lock release"),
    ("backdrill.services.backup_db", "backup_database", "backup_database (whole)"),
    ("backdrill.pg.connection.ConnParams", "connect", "connect (every connection)"),
    ("backdrill.pg.binaries", "find_program", "find pg_dump"),
    ("backdrill.services.backup_db", "estimated_dump_size", "size estimate"),
    ("backdrill.services.backup_db", "refuse_unreadable", "pre-flight privileges"),
    ("backdrill.services.backup_db", "inventory", "inventory"),
    ("backdrill.services.snapshot_facts", "compute_content", "content digests, own conns (thread)"),
    (
        "backdrill.services.snapshot_facts",
        "compute_content_in_snapshot",
        "content digests, snapshot conn (thread)",
    ),
    ("backdrill.services.snapshot_facts", "odoo_facts", "odoo facts (thread)"),
    ("backdrill.services.snapshot_facts", "referenced_roles", "roles (thread)"),
    ("backdrill.services.snapshot_facts", "read_properties", "properties (thread)"),
    ("backdrill.services.backup_db", "dump_custom", "pg_dump -> zstd -> sha -> store"),
    ("backdrill.pg.command.Child", "__init__", "spawn a child (fork/exec)"),
    ("backdrill.pg.command.Child", "check", "wait for pg_dump's exit"),
    ("backdrill.services.dump_stream", "compress_stream", "zstd copy_stream"),
    ("backdrill.services.snapshot_facts.SnapshotFacts", "outcome", "wait for the facts thread"),
    ("backdrill.repository.manifest.DbManifest", "to_json", "manifest to JSON"),
    ("backdrill.storage.local.LocalStorage", "put_bytes", "put_bytes (manifest, locks)"),
    ("backdrill.storage.local._LocalWriter", "_commit", "object commit (fsync, rename, fsync dir)"),
    ("backdrill.storage.local.LocalStorage", "delete", "delete (lock release)"),
    ("backdrill.services.snapshot_facts.SnapshotFacts", "run", "facts thread (whole)"),
    ("backdrill.services.backup_db", "backup_globals", "globals (once)"),
    ("backdrill.cli.app", "record_attempts", "attempt records (once)"),
]


def _resolve(dotted: str) -> Any:
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


#: one call of a wrapped function: phase, thread id (the kernel's), thread name, start
#: and end on CLOCK_MONOTONIC (the clock of `perf record -k CLOCK_MONOTONIC`)
Event = tuple[str, int, str, float, float]


def _timer(original: Callable[..., Any], phase: str, events: list[Event]) -> Callable[..., Any]:
    @functools.wraps(original)
    def timed(*args: Any, **kw: Any) -> Any:
        started = time.monotonic()
        try:
            return original(*args, **kw)
        finally:
            thread = threading.current_thread()
            events.append(
                (phase, threading.get_native_id(), thread.name, started, time.monotonic())
            )

    return timed


def _install_timers() -> list[Event]:
    events: list[Event] = []  # list.append is atomic: no lock
    for owner_name, attr, phase in PHASES:
        owner = _resolve(owner_name)
        original: Callable[..., Any] | None = getattr(owner, attr, None)
        if original is None:  # an older backdrill (PYTHONPATH): the phase is not there
            continue

        setattr(owner, attr, _timer(original, phase, events))
    return events


def child_main(out: Path, argv: list[str]) -> None:
    """In the child: the timers, then the real CLI; the phases written to ``out``."""
    events = _install_timers()
    from backdrill.cli.app import main as cli_main

    started_at = time.monotonic()
    started = time.perf_counter()
    code = cli_main(argv, process=True)
    wall = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # pg_dump, pg_dumpall
    cpu = {
        "backdrill (python)": own.ru_utime + own.ru_stime,
        "pg_dump (children)": children.ru_utime + children.ru_stime,
    }
    spent: dict[str, list[float]] = defaultdict(list)
    for phase, _tid, _name, start, end in events:
        spent[phase].append(end - start)
    run = {"pid": os.getpid(), "started": started_at, "ended": time.monotonic()}
    document = {"code": code, "wall": wall, "phases": spent, "cpu": cpu, "events": events}
    out.write_text(json.dumps({**document, **run}))
    sys.exit(code)


def _backup_argv(config: Path, parallel: int) -> list[str]:
    return ["--config", str(config), "backup", "db", "--all", "--parallel", str(parallel)]


def server_cpu(cluster: LocalCluster) -> float:
    """CPU seconds of the server's exited processes (the backends of every connection):
    the postmaster waits for them, so /proc counts their time in its cutime + cstime."""
    pid = cluster._postmaster_pid()
    assert pid is not None
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def run_phases(
    config: Path, parallel: int, env: dict[str, str], out: Path, cluster: LocalCluster
) -> dict[str, Any]:
    server_before = server_cpu(cluster)
    child = [sys.executable, "-m", "benchmarks.profile_many_databases", "--child", str(out)]
    started = time.perf_counter()
    proc = subprocess.run(
        [*child, "--", *_backup_argv(config, parallel)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
    )
    total = time.perf_counter() - started
    server = server_cpu(cluster) - server_before
    if proc.returncode != 0:
        sys.exit(f"backup db --parallel {parallel} exited {proc.returncode}:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["process_wall"] = total
    result["cpu"]["PostgreSQL backends"] = server
    return result


def run_py_spy(config: Path, parallel: int, env: dict[str, str], out: Path) -> None:
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    argv = [py_spy, "record", "--subprocesses", "--rate", "250", "--format", "speedscope"]
    argv += ["-o", str(out), "--", sys.executable, "-m", "backdrill"]
    subprocess.run([*argv, *_backup_argv(config, parallel)], env=env, check=True)


def print_phases(parallel: int, result: dict[str, Any], databases: int) -> None:
    print(f"\n--parallel {parallel}: process wall {result['process_wall']:.2f} s, ", end="")
    print(f"CLI wall {result['wall']:.2f} s (interpreter start-up and imports: the rest)")
    print(f"{'phase':<40} {'calls':>5} {'sum s':>7} {'per db ms':>9}")
    for _owner, _attr, phase in PHASES:
        times = result["phases"].get(phase, [])
        total = sum(times)
        print(f"{phase:<40} {len(times):>5} {total:>7.2f} {total / databases * 1000:>9.1f}")
    cpu = result["cpu"]
    shown = ", ".join(f"{name} {seconds:.2f}" for name, seconds in cpu.items())
    print(f"CPU seconds: {shown}; total {sum(cpu.values()):.2f}")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child_main(Path(sys.argv[2]), sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", type=int, default=50)
    parser.add_argument("--rows", type=int, default=2000, help="rows per table")
    parser.add_argument("--py-spy", type=Path, default=None, help="speedscope profiles here")
    args = parser.parse_args()
    with bench_cluster("backdrill-profile-many-", args.databases, args.rows) as (
        cluster,
        work,
        env,
    ):
        for parallel in (1, 2):
            config = write_config(work, cluster.params, parallel)
            result = run_phases(config, parallel, env, work / f"phases-{parallel}.json", cluster)
            print_phases(parallel, result, args.databases + 1)
            if args.py_spy is not None:
                args.py_spy.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(work / f"repo-{parallel}", ignore_errors=True)
                run_py_spy(config, parallel, env, args.py_spy / f"parallel-{parallel}.json")


if __name__ == "__main__":
    main()
