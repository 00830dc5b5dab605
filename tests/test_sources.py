"""Several PostgreSQL sources in one config (``sources:``), against two real clusters:
one run backs up both, prune applies each source's retention, ``drill run --all``
drills each source's latest backup and names the source; same-named databases of two
sources never share a key."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from backdrill.config.loading import load_config
from backdrill.config.model import Config
from backdrill.config.sources import configured_sources, find_source, retention_of
from backdrill.pg.cluster import LocalCluster
from backdrill.pg.connection import ConnParams
from backdrill.policy.ssot import conflicts_of, missing_sources, ssot_of
from backdrill.repository.catalog import list_db_backups, select_backup
from backdrill.repository.layout import MANIFEST_NAME
from backdrill.repository.locks import db_scope
from backdrill.runtime.errors import ConfigError, UsageError
from backdrill.runtime.redact import SECRETS
from backdrill.runtime.timeutil import utcnow
from backdrill.services.context import RunContext
from backdrill.services.facts import gather
from backdrill.services.prune import run_prune
from backdrill.services.status import State, evaluate_config
from backdrill.storage import open_repository
from conftest import drop_database
from helpers.cli import Repo, SampleCli, run_cli
from helpers.history import fake_db_backup, fake_db_backups, prune_config, storage_of
from helpers.pgobjects import create_item_database
from helpers.repo import list_keys, read_object, write_object

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def second_cluster(pg_bin_dir: Path) -> Iterator[LocalCluster]:
    """A second PostgreSQL server: the "Supabase" source beside the session's one."""
    with LocalCluster(pg_bin_dir, tuning={"fsync": "off", "max_connections": "20"}) as cluster:
        SECRETS.add(cluster.password)
        yield cluster


@pytest.fixture
def shop(pg: ConnParams, second_cluster: LocalCluster) -> Iterator[str]:
    """One database name on both servers, with different contents (100 and 7 rows)."""
    name = f"shop_{secrets.token_hex(3)}"
    create_item_database(pg, name, 100)
    create_item_database(second_cluster.params, name, 7)
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

    metrics = tmp_path / "backdrill.prom"
    status = run_cli(capsys, "--config", str(config), "--metrics-file", str(metrics), "status")
    assert f"'database supabase/{shop}'=" in status.out and f"'database {shop}'=" in status.out
    text = metrics.read_text()
    for source, count in (("default", 3), ("supabase", 1)):
        series = f'backdrill_backups{{database="{shop}",kind="db",source="{source}"}}'
        assert f"{series} {count}.0" in text, text
    assert 'backdrill_last_drill_result{database="' in text and 'source="supabase"' in text

    check = run_cli(capsys, "--config", str(config), "config", "check")
    assert "postgres reachable" in check.out
    assert "postgres reachable (source supabase)" in check.out, check.out
    assert f"database {shop} (source supabase)" in check.out


# -- a manifest's source is that of its key -----------------------------------------------


def _forge(repo: Repo, key: str, **update: object) -> None:
    doc = json.loads(read_object(repo, key))
    doc.update(update)
    write_object(repo, key, json.dumps(doc).encode())


def test_a_manifest_claiming_another_source_than_its_key_exits_4_and_prune_deletes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo
) -> None:
    old, _ = fake_db_backups(repo, "postgres", timedelta(days=90), timedelta(days=1))
    (named,) = fake_db_backups(repo, "postgres", timedelta(days=2), source="supabase")
    # a default source's manifest rewritten to claim it is Supabase's
    forged = f"db/postgres/{old}/{MANIFEST_NAME}"
    _forge(repo, forged, source="supabase")
    # and a manifest under sources/supabase/ that names no source (an old one moved there)
    moved = f"sources/supabase/db/postgres/{named}/{MANIFEST_NAME}"
    doc = json.loads(read_object(repo, moved))
    del doc["source"]
    write_object(repo, moved, json.dumps(doc).encode())
    before = list_keys(repo)
    config = prune_config(tmp_path / "c.yaml", repo, days=30, min_keep=1, grace_hours=0)
    for backup_id, key in ((old, forged), (named, moved)):
        result = run_cli(capsys, "--config", str(config), "verify", backup_id)
        assert result.code == 4, result.out + result.err
        assert key in result.err
    result = run_cli(capsys, "--config", str(config), "prune")
    assert result.code == 4, result.out + result.err
    assert forged in result.err and moved in result.err
    assert list_keys(repo) == before


def test_same_database_name_in_two_sources_keeps_two_keys_locks_and_needs_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    now = utcnow()
    with storage_of(local_repo) as storage:
        mine = fake_db_backup(storage, "postgres", now - timedelta(hours=2))
        theirs = fake_db_backup(storage, "postgres", now - timedelta(hours=1), source="supabase")
        listing = list_db_backups(storage)
    assert listing.groups() == [("default", "postgres"), ("supabase", "postgres")]
    assert db_scope("postgres") != db_scope("postgres", "supabase")
    with pytest.raises(UsageError, match="--source"):
        select_backup(listing.backups, database="postgres")
    assert select_backup(listing.backups, database="postgres", source="default").id == mine
    assert select_backup(listing.backups, database="postgres", source="supabase").id == theirs
    with pytest.raises(UsageError, match=r"postgres, supabase/postgres"):
        select_backup(listing.backups)  # several databases: named with their source
    config = prune_config(tmp_path / "c.yaml", local_repo, days=30)
    result = run_cli(capsys, "--config", str(config), "drill", "run", "--database", "postgres")
    assert result.code == 2, result.out + result.err
    assert "--source" in result.err
    listed = run_cli(capsys, "--config", str(config), "list")
    assert listed.code == 0 and "supabase" in listed.out and "default" in listed.out


# -- the configuration ---------------------------------------------------------------------


def _load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "c.yaml"
    path.write_text(f"storage: {{url: 'file://{tmp_path}/repo'}}\n{text}")
    return load_config(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "sources:\n  supabase: {host: a}\n  supabase: {host: b}\n",
            r"supabase.*(repeated|twice|duplicate)",
        ),
        ("postgres: {host: a}\nsources:\n  default: {host: b}\n", r"sources -> default"),
        ("sources:\n  Supa Base: {host: b}\n", r"sources -> Supa Base"),
        ("sources:\n  supabase: {host: b, retention: {days: 0}}\n", r"retention -> days"),
        ("sources:\n  supabase: {host: b, colour: red}\n", r"colour: unknown key"),
    ],
)
def test_config_errors_of_sources_name_the_key(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        _load(tmp_path, text)


def test_sources_resolve_with_their_own_or_the_top_level_retention(tmp_path: Path) -> None:
    only_named = _load(tmp_path, "sources:\n  a: {host: x}\n  b: {host: y, retention: {days: 7}}\n")
    assert [s.name for s in configured_sources(only_named)] == ["a", "b"]
    both = _load(
        tmp_path,
        "postgres: {host: z}\nretention: {days: 30}\n"
        "sources:\n  b: {host: y, retention: {days: 7}, password: pw-of-b-42}\n",
    )
    assert [(s.name, s.retention.days) for s in configured_sources(both)] == [
        ("default", 30),
        ("b", 7),
    ]
    assert retention_of(both, "gone").days == 30  # a source no longer configured
    assert "pw-of-b-42" not in SECRETS.redact("password pw-of-b-42")
    plain = _load(tmp_path, "postgres: {host: z}\n")
    assert [s.name for s in configured_sources(plain)] == ["default"]
    with pytest.raises(UsageError, match="no source 'nope'") as caught:
        find_source(plain, "nope")
    assert "default" in (caught.value.hint or "")


def test_the_ssot_backup_db_row_of_a_source_sets_its_retention(tmp_path: Path) -> None:
    shutil.copy(REPO / "ops/ssot/system_design_map.yaml", tmp_path / "ssot.yaml")
    config = _load(tmp_path, "ssot: ssot.yaml\nsources:\n  supabase: {host: y}\n")
    by_name = {s.name: s for s in configured_sources(config)}
    assert by_name["supabase"].retention.days == 7
    assert by_name["supabase"].retention.min_keep == 7
    assert retention_of(config, "default").days == 30
    assert conflicts_of(config) == ()
    missing = _load(tmp_path, "ssot: ssot.yaml\n")
    assert missing_sources(missing, ssot_of(missing)) == ["supabase"]  # type: ignore[arg-type]
    disagreeing = _load(
        tmp_path, "ssot: ssot.yaml\nsources:\n  supabase: {host: y, retention: {days: 3}}\n"
    )
    assert conflicts_of(disagreeing) == (
        "sources -> supabase -> retention -> days: config 3, SSOT 7",
    )
    assert retention_of(disagreeing, "supabase").days == 7  # the SSOT applies


def test_unknown_source_and_ambiguous_database_are_usage_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    second_cluster: LocalCluster,
    local_repo: Repo,
) -> None:
    config = _two_sources_config(tmp_path, pg, second_cluster.params, "shop", local_repo)
    unknown = run_cli(capsys, "--config", str(config), "backup", "db", "--source", "nope")
    assert unknown.code == 2, unknown.out + unknown.err
    assert "no source 'nope'" in unknown.err and "supabase" in unknown.err
    ambiguous = run_cli(capsys, "--config", str(config), "backup", "db", "-d", "shop")
    assert ambiguous.code == 2, ambiguous.out + ambiguous.err
    assert "--source" in ambiguous.err
    assert list_keys(local_repo, "db/") == list_keys(local_repo, "sources/") == []


def test_a_single_source_config_and_a_repository_written_before_sources_still_work(
    sample_cli: SampleCli, pg: ConnParams, local_repo: Repo
) -> None:
    name = f"old_{secrets.token_hex(3)}"
    create_item_database(pg, name, 12)
    try:
        cli = sample_cli.drilling(database=name)
        result = cli("backup", "db")
        assert result.code == 0, result.out + result.err
        (key,) = [k for k in list_keys(local_repo) if k.endswith(MANIFEST_NAME)]
        assert key.startswith(f"db/{name}/")  # the keys of every repository before sources
        assert list_keys(local_repo, "sources/") == []
        doc = json.loads(read_object(local_repo, key))
        del doc["source"]  # as backdrill wrote manifests before sources existed
        write_object(local_repo, key, json.dumps(doc).encode())
        listed = cli("list", "--json")
        assert [m["source"] for m in json.loads(listed.out)] == ["default"]
        result = cli("drill", "run")
        assert result.code == 0, result.out + result.err
        assert f"of {name}, source default" in result.out
        status = cli("status")
        assert f"database {name}" in status.out
    finally:
        drop_database(pg, name)


def test_status_measures_each_source_against_its_own_rpo_target(
    tmp_path: Path, local_repo: Repo
) -> None:
    now = utcnow()
    with storage_of(local_repo) as storage:
        fake_db_backup(storage, "odoo", now - timedelta(hours=2))
        fake_db_backup(storage, "postgres", now - timedelta(hours=2), source="supabase")
        config = _load(
            tmp_path,
            "postgres: {databases: [odoo]}\ntargets: {rpo_hours: 24}\nsources:\n"
            "  supabase: {databases: [postgres], targets: {rpo_hours: 1}}\n",
        )
        config = config.model_copy(
            update={"storage": config.storage.model_copy(update={"url": local_repo.url})}
        )
        report = evaluate_config(gather(storage, config), config, now)
    states = {c.name: c.state for c in report.checks}
    assert states["database odoo"] is State.OK
    assert states["database supabase/postgres"] is State.CRITICAL  # 2 h old, its RPO 1 h


@pytest.mark.parametrize(
    ("databases", "named"), [(["postgres"], "supabase/postgres"), ("all", "source supabase")]
)
def test_a_source_that_cannot_be_reached_does_not_stop_the_others(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    shop: str,
    local_repo: Repo,
    databases: list[str] | str,
    named: str,
) -> None:
    """Listed databases fail one by one; ``all`` cannot even be listed: the source fails."""
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    doc = {
        "postgres": {**_connection(pg, tmp_path / "pw1"), "databases": [shop]},
        "sources": {
            "supabase": {"host": "127.0.0.1", "port": port, "user": "x", "databases": databases}
        },
        "storage": {"url": local_repo.url},
    }
    config = tmp_path / "down.yaml"
    config.write_text(yaml.safe_dump(doc))
    result = run_cli(capsys, "--config", str(config), "backup", "db")
    assert result.code == 5, result.out + result.err
    assert "committed backup" in result.out and f"of {shop}:" in result.out
    assert f"1 of 2 backups failed: {named}" in result.err
    assert len([k for k in list_keys(local_repo, f"db/{shop}/") if k.endswith(MANIFEST_NAME)]) == 1
