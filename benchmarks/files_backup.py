"""Benchmark of `backdrill backup files`: a 10,000-file filestore (a few KB each),
backed up twice to a local repository with the real CLI (a first full run, then a
second run of the unchanged source). Prints one table:

    run, wall seconds (the whole process), seconds inside backdrill (snapshot created_at
    to finished_at), files read, bytes uploaded, ratio of the wall time to the first's

Target (issue 4): the second run takes under 10% of the first's time and uploads 0
content bytes. Usage: `.venv/bin/python benchmarks/files_backup.py [--files N]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

BACKDRILL = [sys.executable, "-m", "backdrill", "--log-format", "json"]


def make_filestore(root: Path, count: int, seed: int = 4) -> int:
    """Odoo-shaped: ``ab/abcdef…`` named by the sha1 of the content, 1 to 8 KB each."""
    rng = random.Random(seed)  # noqa: S311 - reproducible benchmark data
    words = [b"invoice", b"order", b"delivery", b"contract", b"photo", b"scan"]
    total = 0
    for i in range(count):
        size = rng.randint(1024, 8 * 1024)
        text = b" ".join(rng.choice(words) for _ in range(size // 12))
        data = b"%%PDF-1.4 %d\n" % i + text + rng.randbytes(size // 3)
        sha1 = hashlib.sha1(data).hexdigest()  # noqa: S324 - Odoo's content address
        path = root / sha1[:2] / sha1
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        total += len(data)
    return total


def run(config: Path, *args: str) -> str:
    proc = subprocess.run(
        [*BACKDRILL, "--config", str(config), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"backdrill {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def timed_backup(config: Path) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    run(config, "backup", "files")
    seconds = time.perf_counter() - started
    latest = json.loads(run(config, "list", "files", "--json"))[-1]
    return seconds, latest


def _seconds(snapshot: dict[str, Any]) -> float:
    """created_at -> finished_at of the snapshot: the work, without interpreter start-up."""
    started = datetime.fromisoformat(snapshot["created_at"])
    return (datetime.fromisoformat(snapshot["finished_at"]) - started).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="more unchanged runs after the second (the verdict uses their median: the "
        "machine is shared and one short run is noisy)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="backdrill-bench-files-"))
    try:
        source = work / "filestore" / "odoo"
        total = make_filestore(source, args.files)
        os.sync()  # measure backdrill, not the kernel writing the new filestore back
        config = work / "backdrill.yaml"
        config.write_text(f"storage:\n  url: file://{work / 'repo'}\nfiles:\n  source: {source}\n")
        print(f"filestore: {args.files} files, {total / 1024 / 1024:.1f} MiB in {source}")
        rows = []
        first_seconds = None
        names = ["first", "second (unchanged)"]
        names += [f"repeat {i} (unchanged)" for i in range(1, args.repeats + 1)]
        for name in names:
            seconds, snapshot = timed_backup(config)
            first_seconds = first_seconds or seconds
            rows.append(
                (
                    name,
                    f"{seconds:.2f}",
                    f"{_seconds(snapshot):.2f}",
                    str(snapshot["files_read"]),
                    str(snapshot["uploaded_bytes"]),
                    f"{seconds / first_seconds:.1%}",
                )
            )
        header = (
            "run",
            "wall seconds",
            "in backdrill",
            "files read",
            "bytes uploaded",
            "ratio to first",
        )
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, tuple("-" * w for w in widths), *rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        unchanged = rows[1:]
        median = statistics.median(float(r[1]) for r in unchanged)
        uploaded = {r[4] for r in unchanged}
        ok = uploaded == {"0"} and median < 0.10 * float(rows[0][1])
        print(
            f"unchanged runs: median {median:.2f} s = {median / float(rows[0][1]):.1%} of the "
            f"first; bytes uploaded {', '.join(sorted(uploaded))}"
        )
        print(f"target (second < 10% of first, 0 bytes uploaded): {'met' if ok else 'MISSED'}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
