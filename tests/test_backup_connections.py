"""What one small database's backup costs the server (issue 17: many small databases):
its content digests are read on the snapshot connection itself, so the backup opens
two sessions (that connection and pg_dump's), not four, and the digests are the same
as those read through connections of their own, whatever the database's own settings;
the facts read on that connection (Odoo's) come before the digests' session settings."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from backdrill.pg.connection import ConnParams
from backdrill.pg.content import SMALL_DATABASE_BYTES, compute_content, digest_connections
from backdrill.pg.content import inventory as read_inventory
from backdrill.repository.digests import ContentFacts
from helpers.cli import Repo, SampleCli
from helpers.pgobjects import scratch_database
from helpers.repo import manifests

# text-digested tables (an enum) whose text form depends on the session's settings,
# which the database's own settings below change for every new session
SCHEMA_SQL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE moods (id int, m mood, seen timestamptz, score float8, paid money, d interval);
INSERT INTO moods SELECT g, 'ok', timestamptz '2024-03-01 12:00:00+00' + g * interval '1 h',
       g / 3.0, g * 1.5, g * interval '1 day 2 h' FROM generate_series(1, 50) g;
CREATE TABLE people (id int PRIMARY KEY, name text);
INSERT INTO people SELECT g, 'p' || g FROM generate_series(1, 200) g;
CREATE SEQUENCE counter START 40;
SELECT nextval('counter');
SELECT lo_from_bytea(0, 'large object bytes');
CREATE TABLE ir_module_module (name text, state text);
INSERT INTO ir_module_module VALUES ('base', 'installed'), ('sale', 'installed');
CREATE TABLE ir_config_parameter (key text, value text);
INSERT INTO ir_config_parameter VALUES ('database.uuid', 'uuid-of-the-small-one');
CREATE TABLE res_users (id int);
INSERT INTO res_users VALUES (1), (2);
"""
ODD_SETTINGS = {
    "TimeZone": "Asia/Kathmandu",
    "IntervalStyle": "sql_standard",
    "extra_float_digits": "-3",
    "lc_monetary": "en_US.UTF-8",
}


@pytest.fixture
def small_db(pg: ConnParams) -> Iterator[str]:
    with scratch_database(pg, "small", SCHEMA_SQL) as name:
        with pg.connect() as conn:
            for setting, value in ODD_SETTINGS.items():
                try:
                    conn.execute(f"ALTER DATABASE \"{name}\" SET {setting} TO '{value}'")  # type: ignore[arg-type]
                except Exception:  # a locale this system lacks: the others still apply
                    if setting != "lc_monetary":
                        raise
        yield name


def _sessions(pg: ConnParams, database: str) -> int:
    """Sessions ever established to ``database`` (PostgreSQL 14+), once none is left:
    a backend's statistics are flushed before it leaves pg_stat_activity."""
    with pg.connect() as conn:
        deadline = time.monotonic() + 30
        while True:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = %s), "
                "(SELECT sessions FROM pg_stat_database WHERE datname = %s)",
                (database, database),
            ).fetchone()
            assert row is not None
            if row[0] == 0 or time.monotonic() > deadline:
                return int(str(row[1]))
            time.sleep(0.05)


def test_the_digests_go_on_the_snapshot_connection_below_the_small_size_only() -> None:
    assert digest_connections(0, 2) == 0
    assert digest_connections(SMALL_DATABASE_BYTES - 1, 4) == 0
    assert digest_connections(SMALL_DATABASE_BYTES, 4) == 4
    assert digest_connections(None, 3) == 3  # the size unknown: not small
    assert digest_connections(SMALL_DATABASE_BYTES * 10, 0) == 1


def test_a_small_database_is_backed_up_in_two_sessions_with_the_same_digests(
    sample_cli: SampleCli, pg: ConnParams, small_db: str, local_repo: Repo
) -> None:
    cli = sample_cli(database=small_db)
    before = _sessions(pg, small_db)
    result = cli("backup", "db")
    assert result.code == 0, result.err
    # the snapshot connection and pg_dump's: no connection of the digests' own
    assert _sessions(pg, small_db) - before == 2

    (manifest,) = manifests(local_repo)
    recorded = ContentFacts.model_validate(manifest["content"])
    db = pg.with_db(small_db)
    with db.connect() as conn:
        inv = read_inventory(conn)
    expected = compute_content(db, inv, workers=2)
    assert {t.name for t in recorded.tables} >= {"moods", "people"}
    assert len(recorded.large_objects) == 1
    assert [s.name for s in recorded.sequences] == ["counter"]
    assert recorded == expected
    # the Odoo facts are read (unqualified names) before the digests set search_path ''
    assert manifest["odoo"] is not None, "the Odoo facts were not read"
    assert manifest["odoo"]["installed_modules"] == ["base", "sale"]
    assert manifest["odoo"]["database_uuid"] == "uuid-of-the-small-one"
