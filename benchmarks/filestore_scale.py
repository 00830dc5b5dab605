"""Scale benchmark of the filestore (issue 17): a generated Odoo-shaped filestore of
small files (most under 100 KB), backed up to a local repository with the real CLI at
two sizes (a quarter of the files, then all of them), each: a first run, an unchanged
second run, then ``restore files``, ``verify`` and ``prune``; plus a first run of a
smaller filestore to S3 (moto, through a counting proxy) against the same to a local
repository. Prints one Markdown table per part, for docs/benchmarks.md.

The filestore is generated once under ``--dir`` (``db0`` .. ``db3``, a quarter each, so
the smaller size is ``db0`` and the larger the whole) and reused by later runs; pass
``--clean`` to delete it at the end.

Usage: ``.venv/bin/python benchmarks/filestore_scale.py [--files 1000000] [--dir D]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.docsection import write_generated
from benchmarks.measure import Run, measure

BACKDRILL = [sys.executable, "-m", "backdrill", "--log-format", "json"]
PARTS = 4
MiB = 1024 * 1024


def attachment_size(rng: random.Random) -> int:
    """Odoo attachments: mostly small (thumbnails, PDFs of a page), a few larger."""
    roll = rng.random()
    if roll < 0.85:
        return rng.randint(200, 2_000)
    if roll < 0.98:
        return rng.randint(2_000, 20_000)
    return rng.randint(20_000, 100_000)


def generate(root: Path, count: int, seed: int = 17) -> None:
    """``db<k>/ab/abcdef…`` named by the sha1 of the content (as Odoo does); skipped
    when ``root`` already holds a complete filestore of ``count`` files."""
    marker = root.parent / f".{root.name}-complete-{count}"
    if marker.exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng = random.Random(seed)  # noqa: S311 - reproducible benchmark data
    text = b"invoice order delivery contract photo scan " * 2500
    started = time.perf_counter()
    for i in range(count):
        size = attachment_size(rng)
        data = b"%d\n" % i + rng.randbytes(size // 2) + text[: size - size // 2]
        sha1 = hashlib.sha1(data).hexdigest()  # noqa: S324 - Odoo's content address
        folder = root / f"db{i % PARTS}" / sha1[:2]
        try:
            fd = os.open(folder / sha1, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except FileNotFoundError:
            folder.mkdir(parents=True)
            fd = os.open(folder / sha1, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, data)
        os.close(fd)
        if i and i % 100_000 == 0:
            print(f"generated {i} files in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    marker.touch()


def read_through(root: Path) -> None:
    """Read every file once, so that each first run starts with the filestore in the
    page cache whatever ran before (a cold cache measures the disk, and differently
    from one run to the next)."""

    def read_dir(directory: str) -> None:
        for entry in os.scandir(directory):
            if entry.is_dir(follow_symlinks=False):
                read_dir(entry.path)
            elif entry.is_file(follow_symlinks=False):
                with open(entry.path, "rb") as stream:
                    while stream.read(1 << 20):
                        pass

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(read_dir, sorted(e.path for e in os.scandir(root) if e.is_dir())))


def tree_bytes(root: Path) -> int:
    return sum(
        os.path.getsize(os.path.join(d, f)) for d, _dirs, files in os.walk(root) for f in files
    )


def write_config(path: Path, repo_url: str, source: Path, storage: dict[str, Any]) -> Path:
    lines = [
        "storage:",
        f"  url: {json.dumps(repo_url)}",
        *(f"  {k}: {json.dumps(v)}" for k, v in storage.items()),
        "files:",
        f"  source: {json.dumps(str(source))}",
        "  name: filestore",
        "retention:",
        "  days: 30",
        "  min_keep: 1",
        "  grace_hours: 0",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(config: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    return measure([*BACKDRILL, "--config", str(config), *args], env=env)


def latest(config: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run(
        [*BACKDRILL, "--config", str(config), "list", "files", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    return json.loads(out)[-1]  # type: ignore[no-any-return]


def du(path: Path) -> int:
    return tree_bytes(path) if path.exists() else 0


def local_size(source: Path, work: Path, files: int) -> list[dict[str, Any]]:
    """Every step at one size, to a fresh local repository."""
    repo = work / f"repo-{files}"
    shutil.rmtree(repo, ignore_errors=True)
    config = write_config(work / f"c-{files}.yaml", f"file://{repo}", source, {})
    rows: list[dict[str, Any]] = []
    read_through(source)
    first = cli(config, "backup", "files")
    snap = latest(config)
    rows.append(_row("backup files, first run", files, first, snap))
    before = du(repo)
    second = cli(config, "backup", "files")
    snap2 = latest(config)
    row = _row("backup files, unchanged run", files, second, snap2)
    row["repo_added_mb"] = (du(repo) - before) / MiB
    rows.append(row)
    target = work / f"restored-{files}"
    shutil.rmtree(target, ignore_errors=True)
    restored = cli(config, "restore", "files", "--to", str(target))
    rows.append(_row("restore files", files, restored, None))
    shutil.rmtree(target, ignore_errors=True)
    verified = cli(config, "verify", snap2["id"])
    rows.append(_row("verify (presence and sizes)", files, verified, None))
    pruned = cli(config, "prune")
    rows.append(_row("prune (mark and sweep)", files, pruned, None))
    shutil.rmtree(repo, ignore_errors=True)
    return rows


def _row(step: str, files: int, run: Run, snap: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "step": step,
        "files": files,
        "seconds": run.seconds,
        "rss_mb": run.peak_rss_kb / 1024,
        "files_per_s": files / run.seconds,
    }
    if snap is not None:
        row["files_read"] = snap["files_read"]
        row["new_objects"] = snap["new_objects"]
    return row


def s3_versus_local(source: Path, work: Path, files: int) -> list[dict[str, Any]]:
    """A first run of the same filestore to S3 (moto, through a proxy that counts the
    requests) and to a local repository."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from benchmarks.moto_s3 import moto_bucket
    from helpers.s3proxy import FaultProxy  # the tests' counting proxy

    rows: list[dict[str, Any]] = []
    read_through(source)
    with moto_bucket("bench", "bench", "bench") as upstream:  # pragma: allowlist secret
        proxy = FaultProxy(upstream).start()
        try:
            storage = {
                "endpoint_url": proxy.url,
                "region": "us-east-1",
                "access_key_id": "bench",
                "secret_access_key": "bench",  # pragma: allowlist secret (a local moto server)
            }
            config = write_config(work / "c-s3.yaml", "s3://bench/repo", source, storage)
            run = cli(config, "backup", "files")
            requests = len(proxy.requests)
            row = _row("first run to S3 (moto)", files, run, latest(config))
            row["requests"] = requests
            row["requests_per_file"] = requests / files
            rows.append(row)
        finally:
            proxy.stop()
    repo = work / "repo-s3-local"
    shutil.rmtree(repo, ignore_errors=True)
    config = write_config(work / "c-local.yaml", f"file://{repo}", source, {})
    run = cli(config, "backup", "files")
    rows.append(_row("first run to a local repository", files, run, latest(config)))
    shutil.rmtree(repo, ignore_errors=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| step | files | seconds | files/s | peak RSS (MB) | repository added (MB) "
        "| requests per file |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        added = f"{r['repo_added_mb']:.2f}" if "repo_added_mb" in r else ""
        reqs = f"{r['requests_per_file']:.4f} ({r['requests']})" if "requests" in r else ""
        lines.append(
            f"| {r['step']} | {r['files']:,} | {r['seconds']:.1f} | {r['files_per_s']:,.0f} "
            f"| {r['rss_mb']:.0f} | {added} | {reqs} |"
        )
    return "\n".join(lines)


def _find(rows: list[dict[str, Any]], step: str, files: int | None = None) -> dict[str, Any] | None:
    return next(
        (r for r in rows if r["step"] == step and (files is None or r["files"] == files)), None
    )


def targets(rows: list[dict[str, Any]], s3_rows: list[dict[str, Any]]) -> str:
    """Issue 17's targets against what was measured (a row absent: not measured)."""
    sizes = sorted({r["files"] for r in rows})
    big = sizes[-1] if sizes else 0
    verdicts: list[tuple[str, str, bool | None]] = []

    def add(what: str, measured: str, met: bool | None) -> None:
        verdicts.append((what, measured, met))

    first = _find(rows, "backup files, first run", big)
    again = _find(rows, "backup files, unchanged run", big)
    if first and again:
        worst = max(first["rss_mb"], again["rss_mb"])
        add(
            f"backup files peak RSS at {big:,} files, first and unchanged, under 300 MB",
            f"{first['rss_mb']:.0f} and {again['rss_mb']:.0f} MB",
            worst < 300,
        )
        add(
            f"unchanged run at {big:,} files under 30 s, adding under 2 MB",
            f"{again['seconds']:.1f} s, {again['repo_added_mb']:.2f} MB",
            again["seconds"] < 30 and again["repo_added_mb"] < 2,
        )
        add(
            "first run, small files, local repository, at least 5,000 files/s",
            f"{first['files_per_s']:,.0f} files/s",
            first["files_per_s"] >= 5000,
        )
    if len(sizes) > 1:
        for step in ("backup files, first run", "backup files, unchanged run"):
            small, large = _find(rows, step, sizes[0]), _find(rows, step, big)
            if small and large:
                add(
                    f"{step}: peak RSS at {sizes[0]:,} within 10 % of {big:,}",
                    f"{small['rss_mb']:.0f} vs {large['rss_mb']:.0f} MB",
                    abs(large["rss_mb"] - small["rss_mb"]) <= 0.1 * large["rss_mb"],
                )
    for step in ("restore files", "prune (mark and sweep)"):
        row = _find(rows, step, big)
        if row:
            add(
                f"{step} at {big:,} files under 300 MB",
                f"{row['rss_mb']:.0f} MB",
                row["rss_mb"] < 300,
            )
    s3 = _find(s3_rows, "first run to S3 (moto)")
    local = _find(s3_rows, "first run to a local repository")
    if s3 and local:
        ratio = s3["files_per_s"] / local["files_per_s"]
        add(
            "first run to S3 at least 0.5x the local rate; requests per file",
            f"{ratio:.2f}x; {s3['requests_per_file']:.4f} requests per file",
            ratio >= 0.5,
        )
    lines = ["| target | measured | met |", "| --- | --- | --- |"]
    lines += [f"| {w} | {m} | {'yes' if ok else 'NO'} |" for w, m, ok in verdicts]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--s3-files", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "bd-scale")
    parser.add_argument("--only", choices=["small", "large", "s3"], action="append")
    parser.add_argument("--clean", action="store_true", help="delete the filestore at the end")
    parser.add_argument(
        "--write-docs", action="store_true", help="write the tables into docs/benchmarks.md"
    )
    args = parser.parse_args()
    only = set(args.only or ["small", "large", "s3"])
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    loads = [os.getloadavg()[0]]
    source = args.dir / "filestore"
    work = args.dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    generate(source, args.files)
    rows: list[dict[str, Any]] = []
    if "small" in only:
        rows += local_size(source / "db0", work, args.files // PARTS)
    if "large" in only:
        rows += local_size(source, work, args.files)
    print(table(rows), flush=True)
    s3_rows: list[dict[str, Any]] = []
    if "s3" in only:
        s3_source = args.dir / "s3-filestore"
        generate(s3_source, args.s3_files, seed=18)
        s3_rows = s3_versus_local(s3_source, work, args.s3_files)
        print(table(s3_rows), flush=True)
    loads.append(os.getloadavg()[0])
    verdicts = targets(rows, s3_rows)
    print(verdicts)
    if args.write_docs:
        load = f"load average (1 min) {loads[0]:.1f} at the start, {loads[-1]:.1f} at the end"
        write_generated(
            "filestore-scale",
            f"Measured {started} on {os.cpu_count()} cores ({load}).\n\n"
            f"{table(rows + s3_rows)}\n\n{verdicts}",
        )
    if args.clean:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
