"""`make bench`: backdrill against its baselines, side by side in one run.

On an Odoo-shaped database of BENCH_SIZE MB (default 1024) it measures, in interleaved
rounds of BENCH_REPS (default 3), wall time and peak RSS of:

  pg_dump -Fc (default compression) to a file   what users do today
  pg_dump -Fc -Z0 > /dev/null                    the physical limit of a logical dump
  backdrill backup db -> local directory
  backdrill backup db -> S3 (moto server on 127.0.0.1)
  backdrill backup db at a quarter of the size   (peak RSS must stay flat)
  pg_restore -j N of a local file into a fresh sandbox   the restore limit
  backdrill drill run (and its phases)
  backdrill backup files of 10,000 files: the first run, then unchanged runs

then prints a table and writes docs/benchmarks.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backdrill.pg import binaries
from backdrill.pg.cluster import LocalCluster
from backdrill.pg.connection import ConnParams
from backdrill.pg.restore import default_jobs
from benchmarks.docsection import write_generated
from benchmarks.files_backup import make_filestore
from benchmarks.generate import database_size_mb, make_database
from benchmarks.measure import Run, Series, measure
from benchmarks.moto_s3 import moto_bucket

ROOT = Path(__file__).resolve().parent.parent
FC = "pg_dump -Fc > file"
Z0 = "pg_dump -Fc -Z0 > /dev/null"
PIPE = "pg_dump -Fc -Z0 | zstd -1 > file (C pipeline, reference)"
LOCAL = "backdrill backup db -> local"
NODIG = "backdrill backup db -> local, content digests off"
S3 = "backdrill backup db -> S3 (moto)"
QUARTER = "backdrill backup db -> local, 1/4 size"
DRILL = "backdrill drill run"
BACKDRILL = [sys.executable, "-m", "backdrill", "--log-format", "json"]


class Contenders(NamedTuple):
    """The series of one run, in the order main() measures them."""

    fc: Series
    z0: Series
    pipe: Series
    local: Series
    s3: Series
    quarter: Series
    restore: Series
    drill: Series
    nodig: Series
    files_first: Series
    files_again: Series


@dataclass
class Target:
    what: str
    value: float
    limit: float
    unit: str = "x"

    @property
    def met(self) -> bool:
        return self.value <= self.limit


def write_config(path: Path, params: ConnParams, database: str, storage: str, work: Path) -> Path:
    path.write_text(
        "postgres:\n"
        f"  host: {params.host}\n  port: {params.port}\n  user: {params.user}\n"
        f"  sslmode: disable\n  databases: [{database}]\n"
        f"storage:\n{storage}"
        f"drill:\n  work_dir: {work}\n  report_dir: {work / 'reports'}\n"
    )
    return path


def stored_size(repo_dir: Path) -> int:
    sizes = [p.stat().st_size for p in repo_dir.rglob("dump.pgdump.zst")]
    return max(sizes) if sizes else 0


def _configs(work: Path, params: ConnParams, endpoint: str) -> tuple[Path, Path, Path, Path]:
    """The configs of the local, S3, no-digests and quarter-size backups."""
    local = write_config(
        work / "local.yaml", params, "odoo", f"  url: file://{work / 'repo'}\n", work
    )
    s3 = write_config(
        work / "s3.yaml",
        params,
        "odoo",
        f"  url: s3://bench/prod\n  endpoint_url: {endpoint}\n  region: us-east-1\n"
        "  access_key_id: bench\n  secret_access_key: bench-secret\n",
        work,
    )
    nodig = write_config(
        work / "nodig.yaml",
        params,
        "odoo",
        f"  url: file://{work / 'repo-nodig'}\nbackup:\n  content_digests: false\n",
        work,
    )
    quarter = write_config(
        work / "quarter.yaml",
        params,
        "odoo_quarter",
        f"  url: file://{work / 'repo4'}\n",
        work,
    )
    return local, s3, nodig, quarter


def _timed_restore(bin_dir: Path, jobs: int, z0_file: Path) -> Run:
    """pg_restore of the uncompressed dump into a fresh cluster, timed."""
    with LocalCluster(bin_dir) as sandbox:
        with sandbox.params.connect() as conn:
            conn.execute("CREATE DATABASE odoo TEMPLATE template0")
        renv = dict(os.environ)
        renv.update(sandbox.params.with_db("odoo").child_env())
        restore_argv = [
            bin_dir / "pg_restore",
            f"--jobs={jobs}",
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            "--dbname=odoo",
            z0_file,
        ]
        return measure(restore_argv, env=renv)


def main() -> None:
    size_mb = float(os.environ.get("BENCH_SIZE", "1024"))
    reps = int(os.environ.get("BENCH_REPS", "3"))
    jobs = default_jobs()
    initdb = sorted(binaries.find_all("initdb"), key=lambda p: p.major)[-1]
    bin_dir = initdb.bin_dir
    work = Path(tempfile.mkdtemp(prefix="backdrill-bench-"))
    work.chmod(0o755)
    print(f"benchmark: {size_mb:.0f} MB database, {reps} rounds, {jobs} cores, work in {work}")
    series: dict[str, Series] = {}
    tuning = {"fsync": "off", "shared_buffers": "256MB"}
    try:
        with (
            moto_bucket("bench", "bench", "bench-secret") as endpoint,  # pragma: allowlist secret
            LocalCluster(bin_dir, tuning=tuning) as src,
        ):
            params = src.params
            print("generating the databases ...", flush=True)
            make_database(params, "odoo", size_mb, work / "fs")
            make_database(params, "odoo_quarter", size_mb / 4, work / "fs4")
            real_mb = database_size_mb(params, "odoo")
            quarter_mb = database_size_mb(params, "odoo_quarter")
            env = dict(os.environ)
            env.update(params.with_db("odoo").child_env())
            local, s3, nodig, quarter = _configs(work, params, endpoint)
            pg_dump = bin_dir / "pg_dump"
            z0_file = work / "z0.pgdump"
            subprocess.run([pg_dump, "-Fc", "-Z0", "-f", z0_file, "odoo"], env=env, check=True)
            restore_name = f"pg_restore -j{jobs} (file -> fresh sandbox)"
            names = [FC, Z0, PIPE, LOCAL, S3, QUARTER, restore_name, DRILL, NODIG]
            series = {n: Series(n) for n in names}
            pipe_cmd = f"{pg_dump} -Fc -Z0 odoo | zstd -q -1 -T1 > {work / 'pipe.zst'}"
            for rnd in range(reps):
                print(f"round {rnd + 1}/{reps}", flush=True)
                fc_file = work / "fc.pgdump"
                series[FC].runs.append(measure([pg_dump, "-Fc", "-f", fc_file, "odoo"], env=env))
                series[FC].extra["size_mb"] = fc_file.stat().st_size / 2**20
                series[Z0].runs.append(measure([pg_dump, "-Fc", "-Z0", "odoo"], env=env))
                series[PIPE].runs.append(measure(["bash", "-c", pipe_cmd], env=env))
                series[PIPE].extra["size_mb"] = (work / "pipe.zst").stat().st_size / 2**20
                for name, config, repo in (
                    (LOCAL, local, work / "repo"),
                    (S3, s3, None),
                    (QUARTER, quarter, work / "repo4"),
                    (NODIG, nodig, work / "repo-nodig"),
                ):
                    series[name].runs.append(
                        measure([*BACKDRILL, "--config", config, "backup", "db"], env=env)
                    )
                    if repo is not None:
                        series[name].extra["size_mb"] = stored_size(repo) / 2**20
                series[restore_name].runs.append(_timed_restore(bin_dir, jobs, z0_file))
                series[DRILL].runs.append(
                    measure([*BACKDRILL, "--config", local, "drill", "run"], env=env)
                )
                report = json.loads(
                    sorted((work / "reports").glob("*/report.json"))[-1].read_text()
                )
                timings = {**report["rto"]["phases"], "rto": report["rto"]["achieved_seconds"]}
                for phase, seconds in timings.items():
                    key = phase if phase == "rto" else f"phase_{phase}"
                    series[DRILL].extra[key] = series[DRILL].extra.get(key, 0) + seconds / reps
                print(
                    "  "
                    + ", ".join(f"{s.name}: {s.runs[-1].seconds:.2f}s" for s in series.values()),
                    flush=True,
                )
            files_first, files_again, uploaded = bench_files(work, reps)
            series[files_first.name] = files_first
            series[files_again.name] = files_again
    finally:
        shutil.rmtree(work, ignore_errors=True)

    c = Contenders(*series.values())
    targets = [
        Target(
            "backup db (local) / pg_dump -Fc -Z0 (physical limit)",
            c.local.median / c.z0.median,
            1.15,
        ),
        Target("backup db (local) / pg_dump -Fc", c.local.median / c.fc.median, 0.55),
        Target(
            "backup db with content digests / pg_dump -Fc (issue 12)",
            c.local.median / c.fc.median,
            0.6,
        ),
        Target("backup db, digests off / pg_dump -Fc", c.nodig.median / c.fc.median, 0.55),
        Target(
            "drill verify phase / drill restore phase (issue 12)",
            c.drill.extra["phase_verify"] / c.drill.extra["phase_restore"],
            0.4,
        ),
        Target(
            "stored size / pg_dump -Fc size", c.local.extra["size_mb"] / c.fc.extra["size_mb"], 1.0
        ),
        Target("backup db (S3) / backup db (local)", c.s3.median / c.local.median, 1.2),
        Target("peak RSS of backup db (MB)", c.local.peak_rss_mb, 200, " MB"),
        Target(
            "peak RSS at 4x size / at 1x size", c.local.peak_rss_mb / c.quarter.peak_rss_mb, 1.10
        ),
        Target(
            f"drill restore phase / pg_restore -j{jobs}",
            c.drill.extra["phase_restore"] / c.restore.median,
            1.10,
        ),
        Target(
            f"whole drill (achieved RTO) / pg_restore -j{jobs}",
            c.drill.extra["rto"] / c.restore.median,
            1.3,
        ),
        Target(
            "backup files, unchanged 10,000 files / first run",
            c.files_again.median / c.files_first.median,
            0.10,
        ),
        Target("backup files, unchanged: content bytes uploaded", uploaded, 0, " B"),
    ]
    write_report(c, targets, size_mb=real_mb, quarter_mb=quarter_mb, reps=reps, jobs=jobs)


def bench_files(work: Path, reps: int) -> tuple[Series, Series, float]:
    """backup files of a 10,000-file filestore: the first run, then unchanged runs."""
    source = work / "filestore-bench" / "odoo"
    make_filestore(source, 10_000)
    os.sync()  # measure backdrill, not the kernel writing the new filestore back
    config = work / "files.yaml"
    config.write_text(
        f"storage:\n  url: file://{work / 'repo-files'}\nfiles:\n  source: {source}\n"
    )
    first = Series("backdrill backup files, 10,000 files, first run")
    again = Series("backdrill backup files, unchanged second run")
    first.runs.append(measure([*BACKDRILL, "--config", config, "backup", "files"]))
    uploaded = 0.0
    for _ in range(reps):
        again.runs.append(measure([*BACKDRILL, "--config", config, "backup", "files"]))
        listing = subprocess.run(
            [*BACKDRILL, "--config", str(config), "list", "files", "--json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        uploaded = max(uploaded, float(json.loads(listing)[-1]["uploaded_bytes"]))
    return first, again, uploaded


def _row(s: Series, base: Series | None) -> str:
    lo, hi = s.spread
    ratio = f"{s.median / base.median:.2f}x" if base else ""
    size = f"{s.extra['size_mb']:.1f}" if "size_mb" in s.extra else ""
    return (
        f"| {s.name} | {s.median:.2f} | {lo:.2f}-{hi:.2f} | {ratio} | "
        f"{s.peak_rss_mb:.0f} | {size} |"
    )


def write_report(
    c: Contenders,
    targets: list[Target],
    *,
    size_mb: float,
    quarter_mb: float,
    reps: int,
    jobs: int,
) -> None:
    lines = [
        "| contender | median s | min-max s | ratio | peak RSS MB | stored MB |",
        "|---|---|---|---|---|---|",
        _row(c.fc, None),
        _row(c.z0, None),
        _row(c.pipe, c.z0),
        _row(c.local, c.z0),
        _row(c.nodig, c.fc),
        _row(c.s3, c.local),
        _row(c.quarter, None),
        _row(c.restore, None),
        _row(c.drill, c.restore),
        _row(c.files_first, None),
        _row(c.files_again, c.files_first),
    ]
    phases = ", ".join(
        f"{k.removeprefix('phase_')} {v:.2f}s" for k, v in c.drill.extra.items() if k != "rto"
    )
    verdicts = ["| target | measured | limit | met |", "|---|---|---|---|"]
    verdicts += [
        f"| {t.what} | {t.value:.2f}{t.unit} | {t.limit:g}{t.unit} | {'yes' if t.met else 'NO'} |"
        for t in targets
    ]
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = (
        f"{os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )
    table = "\n".join(lines)
    text = f"""Measured {today} on {machine}; PostgreSQL {binaries.find_all("pg_dump")[0].version}.
Database: Odoo-shaped, {size_mb:.0f} MB (`pg_database_size`), generated by
`benchmarks/generate.py` from `backdrill.sample.odoo`; the RSS check also backs up one
of {quarter_mb:.0f} MB. Each contender ran {reps} times in interleaved rounds; the
ratio column compares medians (backup db local and the C pipeline against the physical
limit, S3 against local, the drill against the restore limit). Drill phases (mean):
{phases}; provision runs in a thread while the dump downloads, so the achieved RTO
(drill start to verified: {c.drill.extra["rto"]:.2f}s) is less than their sum. The
downloaded dump gets the data offsets pg_dump could not write to a pipe
(`backdrill/pg/dumpindex.py`), so that pg_restore's workers seek instead of scanning
it row by row. backup db (local) against the same work done by `pg_dump | zstd -1` in C:
{c.local.median / c.pipe.median:.2f}x.

`backup db` computes content digests by default (`backup.content_digests`: every table
read once more in the dump's snapshot by two connections while pg_dump streams); the
"digests off" row is the same backup counting rows only. The drill's verify phase
recomputes them in the sandbox (issue 12 targets below).

Reproduce: `make bench` (`BENCH_SIZE=<MB>`, `BENCH_REPS=<n>` to change).

{table}

Targets (issues 8 and 12):

{chr(10).join(verdicts)}
"""
    print(table)
    print()
    print("\n".join(verdicts))
    write_generated("make-bench", text)


if __name__ == "__main__":
    main()
