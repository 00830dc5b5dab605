"""``restore db --to DSN``: refuses to clobber, never leaves a half-restored database
under the real name, neutralizes on request."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from backdrill.pg.cluster import LocalCluster
from backdrill.pg.connection import ConnParams
from backdrill.sample.odoo import SampleInfo
from helpers.cli import Cli, Repo, SampleCli, run_cli, write_config
from helpers.pgobjects import create_tablespace, drop_tablespace
from helpers.repo import manifests


def dsn(pg: ConnParams, dbname: str) -> str:
    # the password comes from PGPASSWORD in the environment, not from the DSN
    return f"host={pg.host} port={pg.port} user={pg.user} dbname={dbname} sslmode=disable"


def databases(pg: ConnParams) -> set[str]:
    with pg.connect() as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


def scalar(pg: ConnParams, dbname: str, query: str) -> object:
    with pg.with_db(dbname).connect() as conn:
        row = conn.execute(query).fetchone()  # type: ignore[arg-type]
        return row[0] if row else None


@pytest.fixture
def backed_cli(
    sample_cli: SampleCli, pg: ConnParams, sample: SampleInfo, monkeypatch: pytest.MonkeyPatch
) -> Cli:
    """The CLI on ``sample`` and ``local_repo`` after one backup; the server's password
    in the environment for the restores' checks."""
    cli = sample_cli(database=sample.database)
    assert cli("backup", "db").code == 0
    monkeypatch.setenv("PGPASSWORD", pg.password or "")
    return cli


def test_restore_into_a_non_empty_database_is_refused_without_force(
    pg: ConnParams, sample: SampleInfo, backed_cli: Cli, local_repo: Repo
) -> None:
    before = databases(pg)
    result = backed_cli("restore", "db", "--to", dsn(pg, sample.database))
    assert result.code == 1
    assert manifests(local_repo)[0]["tables"]
    assert f"database {sample.database} exists and holds " in result.err
    assert " relations" in result.err and "refusing to replace it" in result.err
    assert "--force" in result.err
    assert databases(pg) == before


def test_forced_restore_keeps_the_old_database_aside_and_matches_the_manifest(
    pg: ConnParams, sample: SampleInfo, backed_cli: Cli, local_repo: Repo
) -> None:
    with pg.with_db(sample.database).connect() as conn:
        conn.execute("DELETE FROM mail_message")  # the incident
    result = backed_cli(
        "restore",
        "db",
        "--force",
        "--to",
        dsn(pg, sample.database),
    )
    assert result.code == 0, result.err
    assert "row counts match the manifest" in result.out
    (manifest,) = manifests(local_repo)
    expected = next(t["rows"] for t in manifest["tables"] if t["table"] == "mail_message")
    assert scalar(pg, sample.database, "SELECT count(*) FROM mail_message") == expected
    aside = [d for d in databases(pg) if d.startswith(f"{sample.database}__before_restore_")]
    assert len(aside) == 1 and aside[0] in result.out
    assert scalar(pg, aside[0], "SELECT count(*) FROM mail_message") == 0
    assert not [d for d in databases(pg) if "__restoring_" in d]


def test_a_restore_failing_midway_leaves_the_target_untouched(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    pg_cluster: LocalCluster,
    sample: SampleInfo,
    local_repo: Repo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a table in a tablespace that is gone by restore time, restored with
    # --keep-tablespaces: pg_restore fails on it after it has created part of the database
    name = f"ts_gone_{secrets.token_hex(3)}"
    location = create_tablespace(pg, pg_cluster, name)
    try:
        with pg.with_db(sample.database).connect() as conn:
            conn.execute(f'ALTER TABLE res_partner SET TABLESPACE "{name}"')
        config = write_config(tmp_path / "c.yaml", pg, local_repo, databases=[sample.database])
        assert run_cli(capsys, "--config", str(config), "backup", "db").code == 0
        with pg.with_db(sample.database).connect() as conn:
            conn.execute("ALTER TABLE res_partner SET TABLESPACE pg_default")
            conn.execute("DELETE FROM mail_message WHERE id % 2 = 0")
    finally:
        drop_tablespace(pg, name, location)
    remaining = scalar(pg, sample.database, "SELECT count(*) FROM mail_message")
    before = databases(pg)
    monkeypatch.setenv("PGPASSWORD", pg.password or "")
    result = run_cli(
        capsys,
        "--config",
        str(config),
        "restore",
        "db",
        "--force",
        "--keep-tablespaces",
        "--to",
        dsn(pg, sample.database),
    )
    assert result.code == 5
    assert f"could not set default_tablespace to {name}" in result.err
    assert databases(pg) == before
    assert scalar(pg, sample.database, "SELECT count(*) FROM mail_message") == remaining


def test_neutralize_leaves_no_active_mail_server_nor_cron_but_autovacuum(
    pg: ConnParams, sample: SampleInfo, backed_cli: Cli
) -> None:
    target = f"{sample.database}_copy"
    try:
        result = backed_cli(
            "restore",
            "db",
            "--neutralize",
            "--to",
            dsn(pg, target),
        )
        assert result.code == 0, result.err
        assert "neutralized:" in result.out
        with pg.with_db(target).connect() as conn:
            servers = conn.execute("SELECT smtp_host FROM ir_mail_server WHERE active").fetchall()
            assert servers == [("invalid",)]
            crons = conn.execute(
                "SELECT d.module || '.' || d.name FROM ir_cron c JOIN ir_model_data d "
                "ON d.model = 'ir.cron' AND d.res_id = c.id WHERE c.active"
            ).fetchall()
            assert crons == [("base.autovacuum_job",)]
            flag = conn.execute(
                "SELECT value FROM ir_config_parameter WHERE key = 'database.is_neutralized'"
            ).fetchone()
            assert flag == ("true",)
        # the source is untouched
        assert scalar(pg, sample.database, "SELECT count(*) FROM ir_mail_server WHERE active") == 1
    finally:
        with pg.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')


def test_restore_with_a_malformed_before_time_is_a_usage_error(
    pg: ConnParams, sample: SampleInfo, backed_cli: Cli
) -> None:
    result = backed_cli(
        "restore",
        "db",
        "--before",
        "yesterday",
        "--to",
        dsn(pg, "x"),
    )
    assert result.code == 2
    assert "--before 'yesterday' is not a time" in result.err
    future = backed_cli(
        "restore",
        "db",
        "--before",
        "2999-01-01T00:00:00Z",
        "--to",
        dsn(pg, "x"),
    )
    assert future.code == 2 and "is in the future" in future.err


USER_OBJECTS = {
    "materialized view and large object": (
        "CREATE MATERIALIZED VIEW totals AS SELECT 42 AS answer; SELECT lo_from_bytea(0, 'x')",
        "SELECT (SELECT count(*) FROM pg_matviews WHERE matviewname = 'totals')"
        " + (SELECT count(*) FROM pg_largeobject_metadata)",
        2,
    ),
    "function": (
        "CREATE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 42'",
        "SELECT count(*) FROM pg_proc WHERE proname = 'answer'",
        1,
    ),
    "schema": (
        "CREATE SCHEMA ledger",
        "SELECT count(*) FROM pg_namespace WHERE nspname = 'ledger'",
        1,
    ),
    "type": (
        "CREATE TYPE mood AS ENUM ('ok', 'sad')",
        "SELECT count(*) FROM pg_type WHERE typname = 'mood'",
        1,
    ),
    "view": (
        "CREATE VIEW v AS SELECT 1 AS one",
        "SELECT count(*) FROM pg_views WHERE viewname = 'v'",
        1,
    ),
}


@pytest.mark.parametrize("kind", sorted(USER_OBJECTS))
def test_a_target_holding_any_object_of_its_own_is_refused_then_kept_aside(
    pg: ConnParams, backed_cli: Cli, kind: str
) -> None:
    """No tables, but something a user made: a restore without --force refuses it, and
    with --force renames it aside; nothing a user created is ever dropped."""
    create, count, expected = USER_OBJECTS[kind]
    target = f"holder_{secrets.token_hex(3)}"
    with pg.connect() as conn:
        conn.execute(f'CREATE DATABASE "{target}"')
    try:
        with pg.with_db(target).connect() as conn:
            for statement in create.split("; "):
                conn.execute(statement)  # type: ignore[arg-type]
        refused = backed_cli("restore", "db", "--to", dsn(pg, target))
        assert refused.code == 1, refused.out + refused.err
        assert "refusing to replace it" in refused.err
        assert scalar(pg, target, count) == expected

        before = databases(pg)
        forced = backed_cli("restore", "db", "--to", dsn(pg, target), "--force")
        assert forced.code == 0, forced.out + forced.err
        (aside,) = databases(pg) - before
        assert aside.startswith(f"{target}__before_restore_")
        assert scalar(pg, aside, count) == expected
    finally:
        with pg.connect() as conn:
            for name in databases(pg):
                if name.startswith(target):
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
