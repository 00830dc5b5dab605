"""Peak memory of ``backup db`` does not grow with the size of the database."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

from backdrill.pg.connection import ConnParams
from backdrill.sample.odoo import create_sample
from conftest import drop_database
from helpers.cli import Repo, write_config

# zstd's buffers fill within the first ~40 MB of dump; past that, memory must stay flat
SMALL, LARGE = 20, 60  # about 45 MB and 135 MB of dump

# VmHWM is this process's own peak RSS (getrusage's ru_maxrss also counts the memory
# of forked children before they exec, which is not backdrill's)
MEASURE = (
    "import sys\n"
    "from backdrill.cli.app import main\n"
    "code = main(sys.argv[1:])\n"
    "hwm = next(ln for ln in open('/proc/self/status') if ln.startswith('VmHWM'))\n"
    "print('MAXRSS_KB', hwm.split()[1], file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _peak_rss_kb(config: Path) -> int:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURE,
            "--log-format",
            "json",
            "--config",
            str(config),
            "backup",
            "db",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("MAXRSS_KB"))
    return int(line.split()[1])


def test_peak_rss_is_flat_from_a_database_to_one_three_times_larger(
    tmp_path: Path,
    pg: ConnParams,
    local_repo: Repo,
) -> None:
    peaks = {}
    for scale in (SMALL, LARGE):
        name = f"odoo_mem_{scale}_{secrets.token_hex(2)}"
        create_sample(pg, name, tmp_path / f"fs{scale}", scale=scale)
        try:
            config = write_config(tmp_path / f"c{scale}.yaml", pg, local_repo, databases=[name])
            peaks[scale] = _peak_rss_kb(config)
        finally:
            drop_database(pg, name)
    assert peaks[LARGE] <= peaks[SMALL] * 1.10 + 4096, peaks
    assert peaks[LARGE] < 200 * 1024, peaks
