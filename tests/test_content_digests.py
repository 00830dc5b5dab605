"""Content proof: a backup records per table, large object and sequence what its content
is, and the drill and ``restore db`` recompute and compare it one by one. Real
PostgreSQL, real storage; the tampering rewrites stored objects and makes every checksum
and size of the manifest consistent again, so only the content proof can see it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pyrage
import pytest

from backdrill.pg.cluster import LocalCluster
from backdrill.pg.connection import ConnParams
from backdrill.pg.content import in_recovery
from backdrill.repository.digests import display
from backdrill.repository.manifest import parse_db_manifest
from backdrill.repository.zstdio import compressed, decompressed
from backdrill.sample.odoo import SampleInfo
from backdrill.services.verify_content import verify_content
from helpers.backed import Backed, BackUp
from helpers.cli import Repo, run_cli
from helpers.pgobjects import scratch_database
from helpers.repo import read_object, write_object
from helpers.standby import Standby

LO_BYTES = b"large-object-payload-" * 200 + b"MARKER-LO-BYTE-Q" + b"-tail" * 50

SCHEMA_SQL = """
CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, born date,
                     score double precision, seen timestamptz, tags text[]);
INSERT INTO people (name, born, score, seen, tags)
SELECT 'person-' || lpad(g::text, 5, '0'), date '2000-01-01' + g, g / 7.0,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour', ARRAY['a', g::text]
FROM generate_series(1, 300) g;
UPDATE people SET name = 'VALUE-TO-TAMPER-0001' WHERE id = 150;
CREATE SCHEMA x;
CREATE SCHEMA "x.y";
CREATE TABLE x."y.z" (v int);
CREATE TABLE "x.y".z (v int);
INSERT INTO x."y.z" SELECT generate_series(1, 5);
INSERT INTO "x.y".z SELECT generate_series(1, 5);
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE moods (id int, m mood, ms mood[]);
INSERT INTO moods VALUES (1, 'ok', '{sad,happy}'), (2, 'happy', NULL);
CREATE SEQUENCE counter START 40;
SELECT nextval('counter'), nextval('counter');
CREATE MATERIALIZED VIEW people_count AS SELECT count(*) AS n FROM people;
"""


@pytest.fixture
def content_db(pg: ConnParams) -> Iterator[str]:
    with scratch_database(pg, "content", SCHEMA_SQL) as name:
        with pg.with_db(name).connect() as conn:
            conn.execute("SELECT lo_from_bytea(0, %s)", (LO_BYTES,))
        yield name


def drill_checks(capsys: pytest.CaptureFixture[str], backed: Backed) -> tuple[int, dict[str, str]]:
    result = run_cli(capsys, "--config", str(backed.config), "drill", "run")
    (path,) = backed.reports.glob("*/report.json")
    report = json.loads(path.read_text())
    checks = {c["name"]: f"{c['status']}: {c['detail']}" for c in report["checks"]}
    path.parent.joinpath("report.json").unlink()
    return result.code, checks


def patch_dump(backed: Backed, old: bytes, new: bytes) -> None:
    """Replace ``old`` by ``new`` (same length) in the stored dump, recompress, and make
    the manifest's sha256 and sizes consistent with the new object."""
    assert len(old) == len(new)
    key = backed.key("dump.pgdump.zst")
    raw = decompressed(read_object(backed.repo, key), key, limit=1 << 30)
    assert raw.count(old) == 1, old
    stored = compressed(raw.replace(old, new))
    write_object(backed.repo, key, stored)
    doc = dict(backed.manifest)
    doc.update(
        sha256=hashlib.sha256(stored).hexdigest(), stored_size=len(stored), raw_size=len(raw)
    )
    write_object(backed.repo, backed.key("manifest.json"), json.dumps(doc, indent=2).encode())


def verify_read_data_passes(capsys: pytest.CaptureFixture[str], backed: Backed) -> None:
    result = run_cli(capsys, "--config", str(backed.config), "verify", "--all", "--read-data")
    assert result.code == 0, result.out + result.err


def test_the_manifest_holds_digests_and_a_clean_drill_proves_them(
    back_up: BackUp, capsys: pytest.CaptureFixture[str], content_db: str, repo: Repo
) -> None:
    backed = back_up(repo, content_db)
    content = backed.manifest["content"]
    assert isinstance(content, dict)
    tables = {(t["schema"], t["name"]): t for t in content["tables"]}
    assert set(tables) == {("public", "people"), ("public", "moods"), ("x", "y.z"), ("x.y", "z")}
    assert tables[("public", "people")]["rows"] == 300
    # hashed by value where every type allows it; by text where a restore changes the
    # hashed OIDs (enums)
    assert tables[("public", "people")]["method"] == "record"
    assert tables[("public", "moods")]["method"] == "text"
    (lo,) = content["large_objects"]
    assert lo["size"] == len(LO_BYTES)
    sequences = {(s["schema"], s["name"]): s for s in content["sequences"]}
    assert sequences[("public", "counter")]["last_value"] == 41
    code, checks = drill_checks(capsys, backed)
    assert code == 0, checks
    for name in ("row_counts", "content", "large_objects", "sequences"):
        assert checks[name].startswith("pass"), checks
    # the materialized view is named, not silently passed over
    assert (
        checks["materialized_views"].startswith("skip")
        and "people_count" in checks["materialized_views"]
    )


def test_a_value_changed_at_the_same_length_in_the_dump_fails_the_drill_naming_the_table(
    back_up: BackUp, capsys: pytest.CaptureFixture[str], content_db: str, repo: Repo
) -> None:
    backed = back_up(repo, content_db)
    patch_dump(backed, b"VALUE-TO-TAMPER-0001", b"VALUE-TO-TAMPER-0002")
    verify_read_data_passes(capsys, backed)
    code, checks = drill_checks(capsys, backed)
    assert code in (1, 4), checks
    assert checks["row_counts"].startswith("pass"), checks  # counts cannot see it
    assert checks["content"].startswith("fail") and "public.people" in checks["content"]
    assert "x." not in checks["content"]  # only the changed table is named


def test_a_byte_changed_in_a_large_object_fails_the_drill_naming_its_oid(
    back_up: BackUp, capsys: pytest.CaptureFixture[str], pg: ConnParams, content_db: str, repo: Repo
) -> None:
    backed = back_up(repo, content_db)
    with pg.with_db(content_db).connect() as conn:
        (oid,) = [r[0] for r in conn.execute("SELECT oid FROM pg_largeobject_metadata")]
    patch_dump(backed, b"MARKER-LO-BYTE-Q", b"MARKER-LO-BYTE-R")
    verify_read_data_passes(capsys, backed)
    code, checks = drill_checks(capsys, backed)
    assert code in (1, 4), checks
    assert checks["large_objects"].startswith("fail"), checks
    assert checks["content"].startswith("pass"), checks
    assert f"oid {oid}" in checks["large_objects"]


def test_tables_whose_dotted_names_collide_are_checked_each_on_its_own(
    back_up: BackUp,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    content_db: str,
    local_repo: Repo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``x."y.z"`` and ``"x.y".z`` are both ``x.y.z`` when joined: restore the backup,
    delete the rows of the first, and the verification names that very table."""
    backed = back_up(local_repo, content_db)
    restored = f"{content_db}_restored"
    monkeypatch.setenv("PGPASSWORD", pg.password or "")
    to = f"host={pg.host} port={pg.port} user={pg.user} dbname={restored} sslmode=disable"
    result = run_cli(capsys, "--config", str(backed.config), "restore", "db", "--to", to)
    assert result.code == 0, result.out + result.err
    try:
        target = pg.with_db(restored)
        with target.connect() as conn:
            conn.execute('DELETE FROM x."y.z"')
        manifest = parse_db_manifest(
            json.dumps(backed.manifest).encode(), backed.key("manifest.json")
        )
        checks = {c.name: c for c in verify_content(manifest, target)}
        assert checks["row_counts"].failed
        assert 'x."y.z": expected 5, got 0' in checks["row_counts"].detail
        assert '"x.y".z' not in checks["row_counts"].detail
    finally:
        with pg.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')


def test_digests_off_still_counts_and_says_the_content_was_not_proven(
    back_up: BackUp, capsys: pytest.CaptureFixture[str], content_db: str, local_repo: Repo
) -> None:
    backed = back_up(local_repo, content_db, backup={"content_digests": False})
    assert backed.manifest["content"] is None
    code, checks = drill_checks(capsys, backed)
    assert code == 0, checks
    assert checks["row_counts"].startswith("pass")
    assert checks["content"].startswith("skip") and "content not proven" in checks["content"]


def test_a_sql_ascii_database_backs_up_and_drills(
    back_up: BackUp, capsys: pytest.CaptureFixture[str], pg: ConnParams, local_repo: Repo
) -> None:
    with scratch_database(
        pg,
        "ascii",
        "CREATE TABLE notes (id int, body text)",
        # bytes no encoding vouches for, as SQL_ASCII databases hold (latin-1 here)
        "INSERT INTO notes SELECT g, E'caf\\xe9 ' || g FROM generate_series(1, 50) g",
        create="ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
    ) as name:
        with pg.with_db(name).connect() as conn:
            row = conn.execute("SELECT body::bytea FROM notes WHERE id = 1").fetchone()
            assert row is not None and row[0] == b"caf\xe9 1"
        backed = back_up(local_repo, name)
        content = backed.manifest["content"]
        assert isinstance(content, dict)
        assert [(t["schema"], t["name"], t["rows"]) for t in content["tables"]] == [
            ("public", "notes", 50)
        ]
        code, checks = drill_checks(capsys, backed)
        assert code == 0, checks
        assert checks["content"].startswith("pass"), checks


def test_a_hot_standby_backs_up_a_database_with_an_unlogged_table_as_not_dumped(
    back_up: BackUp,
    capsys: pytest.CaptureFixture[str],
    pg_cluster: LocalCluster,
    pg: ConnParams,
    local_repo: Repo,
) -> None:
    with scratch_database(
        pg,
        "standby",
        "CREATE TABLE kept AS SELECT g AS id FROM generate_series(1, 20) g",
        "CREATE UNLOGGED TABLE scratch AS SELECT g AS id FROM generate_series(1, 7) g",
    ) as name:
        with Standby(pg_cluster) as standby:
            standby.catch_up()
            with standby.params.connect() as conn:
                assert in_recovery(conn)
            backed = back_up(local_repo, name, pg=standby.params)
        assert backed.manifest["not_dumped"] == [{"schema": "public", "name": "scratch"}]
        content = backed.manifest["content"]
        assert isinstance(content, dict)
        assert [(t["name"], t["rows"]) for t in content["tables"]] == [("kept", 20)]
        code, checks = drill_checks(capsys, backed)
        assert code == 0, checks
        assert checks["content"].startswith("pass"), checks
        assert checks["not_dumped"].startswith("skip") and "public.scratch" in checks["not_dumped"]


def test_an_odoo_drill_proves_the_tables_its_neutralization_then_changes(
    back_up: BackUp,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    sample: SampleInfo,
    local_repo: Repo,
) -> None:
    """The content is proven as restored, before the neutralization rewrites
    ir_mail_server, ir_cron and ir_config_parameter: a value changed in one of them in
    the dump fails the drill naming it, as any other table would."""
    with pg.with_db(sample.database).connect() as conn:
        conn.execute(
            "INSERT INTO ir_config_parameter (key, value) "
            "VALUES ('backdrill.probe', 'ODOO-VALUE-TAMPER-01')"
        )
    backed = back_up(local_repo, sample.database)
    code, checks = drill_checks(capsys, backed)
    assert code == 0, checks
    assert checks["content"].startswith("pass"), checks
    assert checks["sequences"].startswith("pass"), checks
    assert checks["odoo_neutralized"].startswith("pass"), checks
    assert "content_neutralized" not in checks  # nothing is only counted

    patch_dump(backed, b"ODOO-VALUE-TAMPER-01", b"ODOO-VALUE-TAMPER-02")
    code, checks = drill_checks(capsys, backed)
    assert code in (1, 4), checks
    assert checks["content"].startswith("fail"), checks
    assert "public.ir_config_parameter" in checks["content"], checks


def test_encrypted_manifests_seal_the_digests_and_the_drill_still_proves_them(
    back_up: BackUp,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content_db: str,
    local_repo: Repo,
) -> None:
    key = pyrage.x25519.Identity.generate()
    identity = tmp_path / "age-identity.txt"
    identity.write_text(f"{key}\n")
    encryption = {"recipients": [str(key.to_public())], "identity_file": str(identity)}
    repo = Repo(local_repo.url, {"encryption": encryption})
    backed = back_up(repo, content_db)
    assert "content" not in backed.manifest and "sealed" in backed.manifest
    assert "people" not in json.dumps(backed.manifest)
    code, checks = drill_checks(capsys, backed)
    assert code == 0, checks
    assert checks["content"].startswith("pass") and checks["large_objects"].startswith("pass")


def test_names_in_checks_are_quoted_unambiguous_and_bounded() -> None:
    assert display("public", "res_partner") == "public.res_partner"
    assert display("x", "y.z") == 'x."y.z"'
    assert display("x.y", "z") == '"x.y".z'
    assert display("a", 'q"\n') == 'a."q""\\x0a"'
    assert len(display("s", "n" * 5000)) < 300
