"""A database whose own DateStyle is not ISO (``ALTER DATABASE … SET DateStyle``) backs
up and drills: the snapshot's moment is read whatever the session's date format."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from backdrill.pg.connection import ConnParams
from conftest import drop_database
from helpers.cli import Repo, SampleCli
from helpers.repo import manifests


@pytest.fixture
def dmy_db(pg: ConnParams) -> Iterator[str]:
    name = f"dmy_{secrets.token_hex(4)}"
    with pg.connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f"ALTER DATABASE \"{name}\" SET DateStyle TO 'SQL, DMY'")
    with pg.with_db(name).connect() as conn:
        conn.execute("CREATE TABLE t (id int, at timestamptz DEFAULT now())")
        conn.execute("INSERT INTO t (id) SELECT generate_series(1, 20)")
    yield name
    drop_database(pg, name)


def test_a_database_with_a_non_iso_datestyle_backs_up_and_drills(
    tmp_path: Path, sample_cli: SampleCli, local_repo: Repo, dmy_db: str
) -> None:
    cli = sample_cli(database=dmy_db)
    backed = cli("backup", "db")
    assert backed.code == 0, backed.err  # was: internal error parsing the snapshot's time
    (manifest,) = [m for m in manifests(local_repo) if m["database"] == dmy_db]
    assert manifest["created_at"].startswith("20")
    drilled = cli("drill", "run", "--database", dmy_db, "--report-dir", str(tmp_path / "r"))
    assert drilled.code == 0, drilled.err
