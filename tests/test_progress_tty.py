"""Progress on a terminal: ``backup db`` shows a percentage out of the database's size,
a drill shows pg_restore's entries, one unit system, and log lines are never glued to a
bar. Everything runs under a real pseudo-terminal."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from backdrill.pg.connection import ConnParams
from backdrill.pg.restore_progress import RestoreProgress, is_chatter, is_step
from backdrill.runtime.progress import amount_text, shown_fraction
from backdrill.sample.odoo import SampleInfo
from helpers.cli import Repo, run_cli_pty, write_config
from helpers.repo import manifests

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]")
LOG_LINE = re.compile(r"\d\d:\d\d:\d\d (debug|info|warning|error)\b")


def segments(raw: str) -> list[str]:
    """What the terminal shows, cut where the cursor returns to a line's start."""
    return [s for s in re.split(r"[\r\n]+", ANSI.sub("", raw)) if s.strip()]


def glued_log_lines(raw: str) -> list[str]:
    """Segments where a log line does not start at the start of the line."""
    return [s for s in segments(raw) if LOG_LINE.search(s) and not LOG_LINE.match(s)]


# -- pure parts -----------------------------------------------------------------------


def test_an_estimated_total_stops_at_99_percent() -> None:
    assert shown_fraction(50, 100, estimate=True) == 0.5
    assert shown_fraction(120, 100, estimate=True) == 0.99
    assert shown_fraction(120, 100, estimate=False) == 1.0
    assert shown_fraction(5, None, estimate=True) is None


def test_amounts_are_binary_units_with_a_tilde_for_estimates() -> None:
    assert amount_text(3 * 2**20, 10 * 2**20, "bytes", estimate=True) == "3.0/~10.0 MiB"
    assert amount_text(512, 3 * 2**30, "bytes", estimate=False) == "512 B/3.0 GiB"
    assert amount_text(37, 120, "items", estimate=False) == "37/120 items"
    assert "MB" not in amount_text(10**6, 10**7, "bytes", estimate=False).replace("MiB", "")


def test_verbose_pg_restore_lines_are_progress_and_errors_stay_errors() -> None:
    advanced: list[int] = []
    serial = RestoreProgress(parallel=False, advance=advanced.append)
    assert serial.feed('pg_restore: creating TABLE "public.error_log"')  # not an error
    assert serial.feed('pg_restore: processing data for table "public.res_users"')
    assert serial.feed("pg_restore: connecting to database for restore")
    assert not serial.feed("pg_restore: error: could not execute query: ERROR:  boom")
    assert not serial.feed("Command was: CREATE TABLE public.x ();")
    assert serial.steps == 2 and advanced == [1, 1]
    assert is_step("pg_restore: finished item 3355 TABLE DATA public foo", parallel=True)
    assert not is_step("pg_restore: launching item 3355 TABLE DATA public foo", parallel=True)
    assert not is_chatter("pg_restore: warning: errors ignored on restore: 1")


# -- on a pseudo-terminal ------------------------------------------------------------


def test_backup_db_on_a_terminal_shows_a_percentage_in_mib(
    tmp_path: Path, pg: ConnParams, shared_sample: SampleInfo, local_repo: Repo
) -> None:
    config = write_config(tmp_path / "c.yaml", pg, local_repo, databases=[shared_sample.database])
    result = run_cli_pty("--log-format", "text", "--config", str(config), "backup", "db")
    assert result.code == 0, result.out
    shown = ANSI.sub("", result.out)
    assert re.search(r"dump \S+ .*\d+%", shown), shown
    estimate = re.search(r"/~(\d+\.\d) (KiB|MiB)", shown)  # the estimated total
    assert estimate, shown
    (manifest,) = manifests(local_repo)
    estimated = float(estimate.group(1)) * (1024 if estimate.group(2) == "KiB" else 2**20)
    assert 0.5 < estimated / manifest["raw_size"] < 2  # the size of the data, not of the db
    assert not re.search(r"\d (kB|MB|GB)\b", shown), shown  # one unit system: binary
    assert not glued_log_lines(result.out), glued_log_lines(result.out)


def test_a_drill_on_a_terminal_shows_pg_restore_progress(
    tmp_path: Path, pg: ConnParams, sample: SampleInfo, local_repo: Repo, work_dir: Path
) -> None:
    config = write_config(
        tmp_path / "c.yaml",
        pg,
        local_repo,
        databases=[sample.database],
        drill={"report_dir": str(tmp_path / "reports"), "work_dir": str(work_dir)},
    )
    cfg = ("--log-format", "text", "--config", str(config))
    assert run_cli_pty(*cfg, "backup", "db").code == 0
    result = run_cli_pty(*cfg, "drill", "run")
    assert result.code == 0, result.out
    shown = ANSI.sub("", result.out)
    assert re.search(r"\(pg_restore\).*\d+/\d+ items", shown), shown
    assert "drill phase restore started" in shown
    assert not glued_log_lines(result.out), glued_log_lines(result.out)


def test_restore_db_on_a_terminal_shows_its_phases_and_pg_restore_progress(
    tmp_path: Path, pg: ConnParams, sample: SampleInfo, local_repo: Repo
) -> None:
    config = write_config(tmp_path / "c.yaml", pg, local_repo, databases=[sample.database])
    cfg = ("--log-format", "text", "--config", str(config))
    assert run_cli_pty(*cfg, "backup", "db").code == 0
    copy = f"{sample.database}_copy"
    dsn = f"host={pg.host} port={pg.port} user={pg.user} dbname={copy} sslmode=disable"
    try:
        result = run_cli_pty(
            *cfg, "restore", "db", "--to", dsn, "--jobs", "2", env={"PGPASSWORD": pg.password or ""}
        )
        assert result.code == 0, result.out
    finally:
        with pg.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
    shown = ANSI.sub("", result.out)
    assert re.search(r"\(pg_restore\).*\d+/\d+ items", shown), shown
    for phase in ("download", "restore", "verify", "swap"):
        assert f"restore phase {phase}:" in shown
    assert not glued_log_lines(result.out), glued_log_lines(result.out)


LOGGING_DURING_A_BAR = """
import logging, time
from backdrill.runtime.logs import setup_logging
from backdrill.runtime.progress import default_reporter
setup_logging("text", "run")
log = logging.getLogger("backdrill.test")
with default_reporter().task("copy", total=40 * 2**20) as advance:
    for step in range(12):
        advance(2**20)
        time.sleep(0.12)  # the bar is drawn between log lines
        log.info("step %d done", step)
"""


@pytest.mark.slow
def test_log_lines_are_never_glued_to_a_bar(tmp_path: Path) -> None:
    import os
    import select

    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", LOGGING_DURING_A_BAR],
        stdout=slave,
        stderr=slave,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
    )
    os.close(slave)
    chunks: list[bytes] = []
    while select.select([master], [], [], 30)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=30) == 0
    raw = b"".join(chunks).decode("utf-8", "replace")
    assert sum(1 for s in segments(raw) if "step" in s and "done" in s) >= 12, raw
    assert "copy" in ANSI.sub("", raw)  # a bar was drawn
    assert not glued_log_lines(raw), glued_log_lines(raw)


@pytest.mark.parametrize("unit", ["bytes", "items"])
def test_null_reporter_takes_every_option(unit: str) -> None:
    from backdrill.runtime.progress import NullReporter

    with NullReporter().task("x", 10, unit=unit, estimate=True) as advance:  # type: ignore[arg-type]
        advance(3)
