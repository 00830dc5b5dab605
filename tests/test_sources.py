"""Several PostgreSQL sources in one config (``sources:``), against two real clusters:
one run backs up both, prune applies each source's retention, ``drill run --all``
drills each source's latest backup and names the source; same-named databases of two
sources never share a key."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from backdrill.config import load_config
from backdrill.pg.cluster import LocalCluster
from backdrill.pg.connection import ConnParams
from backdrill.redact import SECRETS
from backdrill.services.context import RunContext
from backdrill.services.prune import run_prune
from backdrill.storage import open_repository
from backdrill.timeutil import utcnow
from conftest import drop_database
from helpers.cli import Repo, run_cli
from helpers.repo import list_keys


@pytest.fixture(scope="module")
def second_cluster(pg_bin_dir: Path) -> Iterator[LocalCluster]:
    """A second PostgreSQL server: the "Supabase" source beside the session's one."""
    with LocalCluster(pg_bin_dir, tuning={"fsync": "off", "max_connections": "20"}) as cluster:
        SECRETS.add(cluster.password)
        yield cluster


def _create(params: ConnParams, name: str, rows: int) -> None:
    with params.connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    with params.with_db(name).connect() as conn:
        conn.execute("CREATE TABLE item (id int PRIMARY KEY, label text)")
        conn.execute(
            "INSERT INTO item SELECT g, md5(g::text) FROM generate_series(1, %s) g", (rows,)
        )


@pytest.fixture
def shop(pg: ConnParams, second_cluster: LocalCluster) -> Iterator[str]:
    """One database name on both servers, with different contents (100 and 7 rows)."""
    name = f"shop_{secrets.token_hex(3)}"
    _create(pg, name, 100)
    _create(second_cluster.params, name, 7)
    yield name
    drop_database(pg, name)
    drop_database(second_cluster.params, name)


def _connection(params: ConnParams, secret: Path) -> dict[str, Any]:
    assert params.password is not None
    secret.write_text(params.password + "\n")
    return {
        "host": params.host,
        "port": params.port,
        "user": params.user,
        "sslmode": "disable",
        "password_file": str(secret),
    }


def _two_sources_config(
    tmp_path: Path, pg: ConnParams, supabase: ConnParams, database: str, repo: Repo, **extra: Any
) -> Path:
    doc: dict[str, Any] = {
        "postgres": {**_connection(pg, tmp_path / "pw1"), "databases": [database]},
        "sources": {
            "supabase": {
                **_connection(supabase, tmp_path / "pw2"),
                "databases": [database],
                "retention": {"days": 7, "min_keep": 1},
            }
        },
        "storage": {"url": repo.url, **repo.storage},
        "retention": {"days": 30, "min_keep": 1},
        **extra,
    }
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_two_sources_backed_up_in_one_run_pruned_by_their_own_retention_and_drilled(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    second_cluster: LocalCluster,
    shop: str,
    local_repo: Repo,
    work_dir: Path,
) -> None:
    reports = tmp_path / "reports"
    config = _two_sources_config(
        tmp_path,
        pg,
        second_cluster.params,
        shop,
        local_repo,
        drill={"work_dir": str(work_dir), "report_dir": str(reports)},
    )
    for _ in range(3):  # three daily runs, each backing up both sources
        result = run_cli(capsys, "--config", str(config), "backup", "db")
        assert result.code == 0, result.out + result.err
        assert f"of {shop}:" in result.out and f"of supabase/{shop}:" in result.out
    default_keys = list_keys(local_repo, f"db/{shop}/")
    supabase_keys = list_keys(local_repo, f"sources/supabase/db/{shop}/")
    assert len([k for k in default_keys if k.endswith("/manifest.json")]) == 3
    assert len([k for k in supabase_keys if k.endswith("/manifest.json")]) == 3
    listed = run_cli(capsys, "--config", str(config), "list", "db", "--json")
    assert sorted(m["source"] for m in json.loads(listed.out)) == ["default"] * 3 + ["supabase"] * 3

    # ten days later: the 30-day source keeps all three, the 7-day one its floor of one
    cfg = load_config(config)
    with open_repository(cfg.storage) as storage:
        ctx = RunContext(config=cfg, storage=storage, run_id="prune-later")
        report = run_prune(ctx, now=utcnow() + timedelta(days=10))
    deleted = sorted(e.scope for e in report.entries if e.action == "delete")
    kept = sorted(e.scope for e in report.entries if e.action == "keep")
    assert deleted == [f"sources/supabase/db/{shop}"] * 2
    assert kept == [f"db/{shop}"] * 3 + [f"sources/supabase/db/{shop}"]
    supabase_left = list_keys(local_repo, f"sources/supabase/db/{shop}/")
    assert len([k for k in supabase_left if k.endswith("/manifest.json")]) == 1
    assert list_keys(local_repo, f"db/{shop}/") == default_keys

    result = run_cli(capsys, "--config", str(config), "drill", "run", "--all")
    assert result.code == 0, result.out + result.err
    summary = json.loads((reports / "summary.json").read_text())
    assert [(d["source"], d["database"]) for d in summary["drills"]] == [
        ("default", shop),
        ("supabase", shop),
    ]
    rows = {}
    for drill in summary["drills"]:
        report_json = json.loads((reports / drill["drill_id"] / "report.json").read_text())
        assert report_json["backup"]["source"] == drill["source"]
        assert (
            f"| source | {drill['source']} |"
            in (reports / drill["drill_id"] / "report.md").read_text()
        )
        rows[drill["source"]] = report_json["backup"]["rows"]
    assert rows == {"default": 100, "supabase": 7}  # each drilled its own server's copy
    assert "supabase" in (reports / "summary.md").read_text()
