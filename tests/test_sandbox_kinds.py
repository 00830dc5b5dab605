"""The other sandbox kinds: ``server`` (a scratch database on an existing server) and
``docker`` (testcontainers; skipped where no Docker engine runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backdrill.pg.connection import ConnParams
from backdrill.sandbox.docker import docker_available
from helpers.cli import SampleCli


def drill_databases(pg: ConnParams) -> list[str]:
    with pg.connect() as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'backdrill_drill_%'"
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_server_sandbox_restores_into_a_unique_database_and_drops_it(
    sample_cli: SampleCli,
    tmp_path: Path,
    pg: ConnParams,
    work_dir: Path,
) -> None:
    dsn_file = tmp_path / "scratch_dsn"
    dsn_file.write_text(
        f"host={pg.host} port={pg.port} user={pg.user} password={pg.password} "
        "dbname=postgres sslmode=disable\n"
    )
    cli = sample_cli(
        drill={
            "sandbox": "server",
            "server_dsn_file": str(dsn_file),
            "report_dir": str(tmp_path / "reports"),
            "work_dir": str(work_dir),
        }
    )
    assert cli("backup", "db").code == 0
    result = cli("drill", "run")
    assert result.code == 0, result.out + result.err
    (path,) = (tmp_path / "reports").glob("*/report.json")
    report = json.loads(path.read_text())
    assert report["sandbox"]["kind"] == "server"
    assert report["sandbox"]["segregated"].startswith("database backdrill_drill_")
    assert drill_databases(pg) == []
    assert str(pg.password) not in path.read_text() + result.out + result.err


@pytest.mark.docker
def test_docker_sandbox_drill_passes(sample_cli: SampleCli, tmp_path: Path) -> None:
    ok, why = docker_available()
    if not ok:
        pytest.skip(f"docker sandbox: {why}")
    cli = sample_cli(drill={"sandbox": "docker", "report_dir": str(tmp_path / "reports")})
    assert cli("backup", "db").code == 0
    result = cli("drill", "run")
    assert result.code == 0, result.out + result.err
