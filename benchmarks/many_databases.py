"""Benchmark of a host with many small databases: `backdrill backup db --all` with
`--parallel 1` then `--parallel 2`, against a throwaway PostgreSQL and a local
repository, with the real CLI. Prints one table:

    parallel, wall seconds (median of alternated rounds), manifests, ratio to --parallel 1

Target (issue 17): `--parallel 2` takes at most 0.6x the time of `--parallel 1`.
`--before SRC` also runs an older tree's `src` (on PYTHONPATH) in the same rounds, each
round running both trees, so that the machine's load hits both alike.
Usage: `.venv/bin/python benchmarks/many_databases.py [--databases 50] [--rounds 1]
[--before SRC]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from backdrill.pg import binaries
from backdrill.pg.cluster import LocalCluster
from backdrill.pg.connection import ConnParams
from benchmarks.docsection import write_generated

BACKDRILL = [sys.executable, "-m", "backdrill", "--log-format", "json"]


def make_databases(params: ConnParams, count: int, rows: int) -> list[str]:
    """``count`` small databases, each a few tables (an Odoo-ish shape, tiny)."""
    names = [f"tenant_{i:03d}" for i in range(count)]
    for name in names:
        with params.connect() as conn:
            conn.execute(f"CREATE DATABASE {name}")
        with params.with_db(name).connect() as conn:
            for table in ("res_partner", "sale_order", "account_move"):
                conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text, note text)")
                conn.execute(
                    f"INSERT INTO {table} SELECT g, 'n' || g, md5(g::text) "
                    "FROM generate_series(1, %s) g",
                    (rows,),
                )
    return names


@contextmanager
def bench_cluster(
    prefix: str, databases: int, rows: int
) -> Iterator[tuple[LocalCluster, Path, dict[str, str]]]:
    """A throwaway PostgreSQL (the newest installed) holding ``databases`` small
    databases, a work directory (removed after) and the environment of a CLI child."""
    initdb = sorted(binaries.find_all("initdb"), key=lambda p: p.major)[-1]
    work = Path(tempfile.mkdtemp(prefix=prefix))
    work.chmod(0o755)
    try:
        with LocalCluster(initdb.bin_dir, tuning={"fsync": "off"}) as cluster:
            make_databases(cluster.params, databases, rows)
            yield cluster, work, {**os.environ, **cluster.params.child_env()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_config(work: Path, params: ConnParams, parallel: int) -> Path:
    """The config of a run with ``--parallel``: its own local repository in ``work``."""
    config = work / f"p{parallel}.yaml"
    config.write_text(
        "postgres:\n"
        f"  host: {params.host}\n  port: {params.port}\n  user: {params.user}\n"
        "  sslmode: disable\n"
        f"storage:\n  url: file://{work / f'repo-{parallel}'}\n"
    )
    return config


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (``/proc/stat``: not idle nor
    waiting for I/O): pg_dump and the PostgreSQL backends are not our children."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def timed_backup(config: Path, parallel: int, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds of one run and the mean count of cores the machine kept busy."""
    busy = busy_seconds()
    started = time.perf_counter()
    proc = subprocess.run(
        [*BACKDRILL, "--config", str(config), "backup", "db", "--all", "--parallel", str(parallel)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"backup db --parallel {parallel} exited {proc.returncode}:\n{proc.stderr}")
    return seconds, (busy_seconds() - busy) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", type=int, default=50)
    parser.add_argument("--rows", type=int, default=2000, help="rows per table")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--before", type=Path, default=None, help="an older tree's src")
    parser.add_argument(
        "--write-docs", action="store_true", help="write the table into docs/benchmarks.md"
    )
    args = parser.parse_args()
    trees: dict[str, str | None] = {"after": None}
    if args.before is not None:
        trees = {"before": str(args.before.resolve()), **trees}
    with bench_cluster("backdrill-bench-many-", args.databases, args.rows) as (cluster, work, env):
        configs = {parallel: write_config(work, cluster.params, parallel) for parallel in (1, 2)}
        times: dict[tuple[str, int], list[float]] = {(t, p): [] for t in trees for p in configs}
        cores: dict[tuple[str, int], list[float]] = {(t, p): [] for t in trees for p in configs}
        loads = [os.getloadavg()[0]]
        for _ in range(args.rounds):  # alternated: a shared machine's load hits all
            for tree, src in trees.items():
                tree_env = env if src is None else {**env, "PYTHONPATH": src}
                for parallel, config in configs.items():
                    shutil.rmtree(work / f"repo-{parallel}", ignore_errors=True)
                    seconds, busy = timed_backup(config, parallel, tree_env)
                    times[tree, parallel].append(seconds)
                    cores[tree, parallel].append(busy)
                    manifests = len(list((work / f"repo-{parallel}").rglob("manifest.json")))
                    assert manifests == args.databases + 1, manifests
            loads.append(os.getloadavg()[0])
    shape = f"{args.rows} rows x 3 tables each"
    out = [
        f"{args.databases} databases, {shape}, {os.cpu_count()} cores, {args.rounds} rounds; "
        f"load average (1 min) after each round: {', '.join(f'{x:.1f}' for x in loads)}",
        "",
        "| tree | --parallel | median s | all s | ratio to --parallel 1 | cores busy (median) |",
        "| --- | ---: | ---: | --- | ---: | ---: |",
    ]
    ncpu = os.cpu_count() or 1
    verdicts = []
    for tree in trees:
        base = statistics.median(times[tree, 1])
        for parallel in configs:
            t = times[tree, parallel]
            shown = " ".join(f"{x:.2f}" for x in t)
            median = statistics.median(t)
            busy = statistics.median(cores[tree, parallel])
            out.append(
                f"| {tree} | {parallel} | {median:.2f} | {shown} | {median / base:.2f}x "
                f"| {busy:.2f} of {ncpu} |"
            )
        met = statistics.median(times[tree, 2]) / base <= 0.6
        both = " and ".join(f"{statistics.median(cores[tree, p]):.2f}" for p in configs)
        verdicts.append(
            f"{tree}: target (--parallel 2 at most 0.6x): {'met' if met else 'MISSED'}; "
            f"cores busy with --parallel 1 and 2: {both} of {ncpu}"
        )
    text = "\n".join([*out, "", *verdicts])
    print(text)
    if args.write_docs:
        started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        write_generated("many-databases", f"Measured {started}: {text}")


if __name__ == "__main__":
    main()
