"""Where the time of an unchanged `backup files` run goes (issue 17: 1,000,000 files in
under 30 s): the generated filestore of benchmarks/filestore_scale.py (generated once,
reused), a first backup to a local repository (once), then unchanged runs, each its own
process, alternating between the code of this checkout and, with `--before SRC`, the
`src` directory of another one (e.g. `git archive <commit> src | tar -x -C /tmp/old`):
before and after on the same machine in one run. Prints a Markdown table (median wall
seconds and peak RSS of each contender) and the load average.

With `--py-spy FILE`, one more unchanged run of this checkout under `py-spy record
--format raw` (`pip install py-spy`), and its 25 busiest frames (own samples).
Usage: `.venv/bin/python -m benchmarks.profile_unchanged_files [--files 250000]
[--runs 3] [--before /tmp/old/src] [--py-spy /tmp/unchanged.txt] [--dir D]`.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.filestore_scale import BACKDRILL, generate, write_config
from benchmarks.measure import Run, measure


def env_for(src: Path | None) -> dict[str, str]:
    """The environment running the code of ``src`` (None: this checkout's)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def busiest_frames(raw: Path, count: int = 25) -> list[tuple[float, str]]:
    """(share of samples, frame) of the frames with the most samples of their own."""
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not samples.isdigit():
            continue
        total += int(samples)
        own[stack.split(";")[-1]] += int(samples)
    return [(n / max(total, 1), frame) for frame, n in own.most_common(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=250_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", type=Path, help="the src directory of the code before")
    parser.add_argument("--py-spy", type=Path, dest="py_spy", help="raw profile to write")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "bd-unchanged")
    parser.add_argument("--clean", action="store_true", help="delete --dir at the end")
    args = parser.parse_args()
    source = args.dir / "filestore"
    repo = args.dir / "repo"
    generate(source, args.files)
    config = write_config(args.dir / "c.yaml", f"file://{repo}", source, {})
    backup = [*BACKDRILL, "--config", str(config), "backup", "files"]
    if not (repo / "files").exists():
        first = measure(backup)
        print(f"first run: {first.seconds:.1f} s", flush=True)
    contenders: dict[str, Path | None] = {"after (this checkout)": None}
    if args.before is not None:
        contenders = {"before": args.before.resolve(), **contenders}
    runs: dict[str, list[Run]] = {name: [] for name in contenders}
    for _ in range(args.runs):
        for name, src in contenders.items():
            runs[name].append(measure(backup, env=env_for(src)))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| code | files | unchanged run, median s (min-max) | peak RSS (MB) |")
    print("| --- | ---: | ---: | ---: |")
    for name, done in runs.items():
        secs = [r.seconds for r in done]
        print(
            f"| {name} | {args.files:,} | {statistics.median(secs):.1f} "
            f"({min(secs):.1f}-{max(secs):.1f}) | {max(r.peak_rss_kb for r in done) / 1024:.0f} |"
        )
    if args.py_spy is not None:
        subprocess.run(
            [
                shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                "record",
                "-r",
                "50",
                "--format",
                "raw",
                "-o",
                str(args.py_spy),
                "--",
                *backup,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for share, frame in busiest_frames(args.py_spy):
            print(f"{share:6.1%} {frame}")
    if args.clean:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
