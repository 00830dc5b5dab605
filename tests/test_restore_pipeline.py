"""The drill restores exactly as an incident restore does: owners, grants and policies
kept (the roles they need recorded in the manifest and created where missing), the
database's encoding, locale, settings and comment recreated, tablespaces named in the
report, and the ``postgres`` database drillable. ``restore db`` goes onto a second,
empty cluster: a new server."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyrage
import pytest

from backdrill.pg.cluster import LocalCluster
from backdrill.pg.connection import ConnParams
from backdrill.runtime.redact import SECRETS
from conftest import drop_database
from helpers.cli import Cli, Repo, Result, write_config
from helpers.pgobjects import create_tablespace, drop_tablespace, dsn, scratch_database
from helpers.repo import list_keys, manifests, read_object, write_object


@dataclass
class Source:
    cli: Cli
    reports: Path

    def run(self, *args: str) -> Result:
        return self.cli(*args)

    def report(self) -> dict[str, object]:
        (path,) = self.reports.glob("*/report.json")
        return json.loads(path.read_text())

    def checks(self) -> dict[str, dict[str, str]]:
        return {c["name"]: c for c in self.report()["checks"]}  # type: ignore[attr-defined]

    def drill_passes(self, database: str) -> dict[str, dict[str, str]]:
        """``database`` backed up and drilled, the drill passing: its checks."""
        assert self.run("backup", "db", "--database", database).code == 0
        drilled = self.run("drill", "run")
        assert drilled.code == 0, drilled.out + drilled.err
        return self.checks()


@pytest.fixture
def new_server(pg_bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnParams]:
    """A second, empty cluster: the new server of an incident."""
    with LocalCluster(pg_bin_dir, tuning={"fsync": "off"}) as cluster:
        SECRETS.add(cluster.password)
        monkeypatch.setenv("PGPASSWORD", cluster.password)
        yield cluster.params


MakeSource = Callable[[Repo], Source]


@pytest.fixture
def source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pg: ConnParams, work_dir: Path
) -> MakeSource:
    """Binds the CLI to a configuration of every database on the server on a given
    repository, drills reporting to ``tmp_path / "reports"``."""

    def make(repo: Repo) -> Source:
        reports = tmp_path / "reports"
        config = write_config(
            tmp_path / "c.yaml",
            pg,
            repo,
            drill={"report_dir": str(reports), "work_dir": str(work_dir)},
        )
        return Source(Cli(capsys, config), reports)

    return make


def one_row(params: ConnParams, query: str) -> tuple[object, ...]:
    with params.connect() as conn:
        row = conn.execute(query).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return tuple(row)


@pytest.fixture
def owned_db(pg: ConnParams) -> Iterator[tuple[str, str]]:
    """A database owned by a role that is not postgres; its tables owned by that role,
    granted to a reader role (itself a member of a group), a row-security policy TO the
    reader, default privileges for the reader: (database, role suffix)."""
    suffix = secrets.token_hex(3)
    name = f"owned_{suffix}"
    owner, reader, group = f"app_owner_{suffix}", f"app_reader_{suffix}", f"app_group_{suffix}"
    with pg.connect() as conn:
        conn.execute(f"CREATE ROLE {owner} LOGIN CREATEDB PASSWORD 'never-recorded-{suffix}'")
        conn.execute(f"CREATE ROLE {group} NOLOGIN")
        conn.execute(f"CREATE ROLE {reader} LOGIN NOINHERIT IN ROLE {group}")
        conn.execute(f"CREATE DATABASE {name} OWNER {owner}")
    with pg.with_db(name).connect() as conn:
        conn.execute(f"SET ROLE {owner}")
        conn.execute("CREATE TABLE invoice (id int PRIMARY KEY, tenant text)")
        conn.execute("INSERT INTO invoice SELECT g, 't' || g % 3 FROM generate_series(1, 30) g")
        conn.execute(f"GRANT SELECT ON invoice TO {reader}")
        conn.execute("ALTER TABLE invoice ENABLE ROW LEVEL SECURITY")
        conn.execute(f"CREATE POLICY tenant_t1 ON invoice TO {reader} USING (tenant = 't1')")
        conn.execute(f"ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO {group}")
        conn.execute(f"GRANT CONNECT ON DATABASE {name} TO {reader}")
    yield name, suffix
    drop_database(pg, name)
    with pg.connect() as conn:
        for role in (reader, group, owner):
            conn.execute(f"DROP ROLE IF EXISTS {role}")


def test_owner_grants_and_policy_survive_the_drill_and_a_restore_onto_a_new_server(
    source: MakeSource, repo: Repo, owned_db: tuple[str, str], new_server: ConnParams
) -> None:
    name, suffix = owned_db
    owner, reader = f"app_owner_{suffix}", f"app_reader_{suffix}"
    src = source(repo)
    assert src.drill_passes(name)["database_properties"]["status"] == "pass"

    restored = src.run("restore", "db", "--to", dsn(new_server, name))
    assert restored.code == 0, restored.err
    assert "created 3 role(s)" in restored.out and "set one" in restored.out
    target = new_server.with_db(name)
    assert one_row(
        target, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'invoice'"
    ) == (owner,)
    assert one_row(
        target,
        f"SELECT has_table_privilege('{reader}', 'invoice', 'SELECT'), "
        f"has_table_privilege('{reader}', 'invoice', 'INSERT')",
    ) == (True, False)
    assert one_row(target, "SELECT polname, polroles::regrole[]::text FROM pg_policy") == (
        "tenant_t1",
        f"{{{reader}}}",
    )
    assert one_row(
        target,
        "SELECT pg_get_userbyid(datdba), "
        f"has_database_privilege('{reader}', current_database(), 'CONNECT') "
        "FROM pg_database WHERE datname = current_database()",
    ) == (owner, True)
    assert one_row(
        target,
        f"SELECT rolcanlogin, rolinherit, rolpassword IS NULL, "
        f"pg_has_role('{reader}', 'app_group_{suffix}', 'MEMBER') "
        f"FROM pg_authid WHERE rolname = '{reader}'",
    ) == (True, False, True, True)
    assert one_row(target, "SELECT count(*) FROM pg_default_acl") == (1,)
    (manifest,) = manifests(repo)
    recorded = {r["name"]: r for r in manifest["roles"]}
    assert {owner, reader, f"app_group_{suffix}"} <= set(recorded)
    assert recorded[reader]["member_of"] == [f"app_group_{suffix}"]
    assert recorded[reader]["inherit"] is False and recorded[owner]["createdb"] is True
    assert "never-recorded" not in json.dumps(manifest)


@pytest.fixture
def latin1_db(pg: ConnParams) -> Iterator[str]:
    name = f"latin1_{secrets.token_hex(3)}"
    with pg.connect() as conn:
        conn.execute(
            f"CREATE DATABASE {name} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' "
            "TEMPLATE template0"
        )
        conn.execute(f'ALTER DATABASE {name} SET search_path = app, "$user", public')
        conn.execute(f"ALTER DATABASE {name} SET work_mem = '12MB'")
    with pg.with_db(name).connect() as conn:
        conn.execute(f"COMMENT ON DATABASE {name} IS 'ledger ''2026'' réel'")
        conn.execute("CREATE SCHEMA app")
        conn.execute("CREATE TABLE app.word (s text CHECK (octet_length(s) <= 5))")
        conn.execute("INSERT INTO app.word VALUES ('ééééé')")
    yield name
    drop_database(pg, name)


PROPERTIES = (
    "SELECT pg_encoding_to_char(encoding), datcollate, datctype, "
    "shobj_description(oid, 'pg_database'), "
    "(SELECT setconfig FROM pg_db_role_setting WHERE setdatabase = d.oid AND setrole = 0) "
    "FROM pg_database d WHERE datname = current_database()"
)


def test_a_latin1_database_comes_back_latin1_with_its_settings_and_comment(
    source: MakeSource, pg: ConnParams, repo: Repo, latin1_db: str, new_server: ConnParams
) -> None:
    src = source(repo)
    check = src.drill_passes(latin1_db)["database_properties"]
    assert check["status"] == "pass"
    assert "encoding LATIN1, collation C, ctype C, 2 setting(s)" in check["detail"]

    restored = src.run("restore", "db", "--to", dsn(new_server, latin1_db))
    assert restored.code == 0, restored.err
    expected = one_row(pg.with_db(latin1_db), PROPERTIES)
    assert expected[0] == "LATIN1" and expected[3] == "ledger '2026' réel"
    assert one_row(new_server.with_db(latin1_db), PROPERTIES) == expected
    with new_server.with_db(latin1_db).connect() as conn:
        assert conn.execute("SHOW search_path").fetchone() == ('app, "$user", public',)
        assert conn.execute("SELECT s, octet_length(s) FROM word").fetchone() == ("ééééé", 5)


def test_a_missing_collation_is_named(source: MakeSource, repo: Repo, latin1_db: str) -> None:
    src = source(repo)
    assert src.run("backup", "db", "--database", latin1_db).code == 0
    (manifest,) = manifests(repo)
    manifest["database_properties"]["collate"] = "xx_NOWHERE.ISO-8859-1"
    key = f"db/{latin1_db}/{manifest['id']}/manifest.json"
    write_object(repo, key, json.dumps(manifest).encode())
    drilled = src.run("drill", "run")
    assert drilled.code == 1
    detail = src.checks()["drill"]["detail"]
    assert "collation xx_NOWHERE.ISO-8859-1" in detail
    assert "the server must provide this collation and locale" in detail


def test_the_drill_names_the_tablespaces_the_source_used(
    source: MakeSource, pg: ConnParams, pg_cluster: LocalCluster, repo: Repo, latin1_db: str
) -> None:
    space = f"fast_{secrets.token_hex(3)}"
    location = create_tablespace(pg, pg_cluster, space)
    try:
        with pg.with_db(latin1_db).connect() as conn:
            conn.execute(f"CREATE TABLE app.hot (id int) TABLESPACE {space}")
            conn.execute("INSERT INTO app.hot VALUES (1), (2)")
        checks = source(repo).drill_passes(latin1_db)
        assert checks["tablespaces"]["status"] == "pass"
        assert f"the source used tablespace(s) {space}" in checks["tablespaces"]["detail"]
        assert checks["row_counts"]["status"] == "pass"
    finally:
        drop_database(pg, latin1_db)
        drop_tablespace(pg, space, location)


def test_the_postgres_database_is_drilled_and_restored_and_a_template_is_refused_clearly(
    source: MakeSource, pg: ConnParams, repo: Repo, new_server: ConnParams
) -> None:
    src = source(repo)
    with pg.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS drill_marker (id int)")
    try:
        assert src.run("backup", "db", "--database", "postgres").code == 0
        drilled = src.run("drill", "run", "--database", "postgres")
        assert drilled.code == 0, drilled.out + drilled.err
        report = src.report()
        assert report["result"] == "pass"
        assert report["backup"]["database"] == "postgres"  # type: ignore[index]
        assert src.checks()["row_counts"]["status"] == "pass"
        # restore db onto a new server's own postgres database (it has no table: replaced)
        restored = src.run(
            "restore", "db", "--database", "postgres", "--to", dsn(new_server, "postgres")
        )
        assert restored.code == 0, restored.err
        assert one_row(new_server, "SELECT to_regclass('public.drill_marker') IS NOT NULL") == (
            True,
        )
    finally:
        with pg.connect() as conn:
            conn.execute("DROP TABLE IF EXISTS drill_marker")
    for path in src.reports.glob("*/report.json"):
        path.unlink()
    assert src.run("backup", "db", "--database", "template1").code == 0
    refused = src.run("drill", "run", "--database", "template1")
    assert refused.code == 5
    assert "database template1 is a template of the server" in refused.out + refused.err
    assert "Traceback" not in refused.err and "internal" not in refused.err.lower()
    assert src.report()["result"] == "fail"


def test_encrypted_manifests_seal_role_names_and_settings(
    source: MakeSource, tmp_path: Path, pg: ConnParams, local_repo: Repo, owned_db: tuple[str, str]
) -> None:
    name, suffix = owned_db
    with pg.connect() as conn:
        conn.execute(f"ALTER DATABASE {name} SET statement_timeout = '17s'")
    key = pyrage.x25519.Identity.generate()
    identity = tmp_path / "identity.txt"
    identity.write_text(f"{key}\n")
    encryption = {"recipients": [str(key.to_public())], "identity_file": str(identity)}
    repo = Repo(local_repo.url, {"encryption": encryption})
    src = source(repo)
    assert src.run("backup", "db", "--database", name).code == 0
    (key_name,) = [k for k in list_keys(repo, "db/") if k.endswith("manifest.json")]
    raw = read_object(repo, key_name)
    for revealing in (f"app_owner_{suffix}", f"app_reader_{suffix}", b"statement_timeout"):
        text = revealing if isinstance(revealing, bytes) else revealing.encode()
        assert text not in raw
    doc = json.loads(raw)
    assert "roles" not in doc and "database_properties" not in doc and "sealed" in doc
    drilled = src.run("drill", "run")
    assert drilled.code == 0, drilled.out + drilled.err
    assert src.checks()["database_properties"]["status"] == "pass"


def test_a_manifest_from_before_roles_were_recorded_still_drills_as_it_did(
    source: MakeSource, pg: ConnParams, local_repo: Repo, owned_db: tuple[str, str]
) -> None:
    name, _suffix = owned_db
    with pg.with_db(name).connect() as conn:  # a policy TO a role never drilled before
        conn.execute("DROP POLICY tenant_t1 ON invoice")
    src = source(local_repo)
    assert src.run("backup", "db", "--database", name).code == 0
    (manifest,) = manifests(local_repo)
    del manifest["roles"], manifest["database_properties"]
    write_object(
        local_repo, f"db/{name}/{manifest['id']}/manifest.json", json.dumps(manifest).encode()
    )
    drilled = src.run("drill", "run")
    assert drilled.code == 0, drilled.out + drilled.err
    checks = src.checks()
    assert checks["database_properties"]["status"] == "skip"
    assert checks["tablespaces"]["status"] == "skip"


def test_an_icu_database_is_drilled_with_its_icu_locale(
    source: MakeSource, pg: ConnParams, local_repo: Repo
) -> None:
    with scratch_database(
        pg,
        "icu",
        "CREATE TABLE word AS SELECT 'Äpfel'::text AS s",
        create="LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' LOCALE 'C.UTF-8' TEMPLATE template0",
    ) as name:
        src = source(local_repo)
        assert src.drill_passes(name)["database_properties"]["status"] == "pass"
        (manifest,) = manifests(local_repo)
        props = manifest["database_properties"]
        assert (props["locale_provider"], props["icu_locale"]) == ("icu", "de-DE")


def test_restore_db_no_owner_creates_no_role_and_keeps_no_owner(
    source: MakeSource,
    pg: ConnParams,
    local_repo: Repo,
    owned_db: tuple[str, str],
    new_server: ConnParams,
) -> None:
    name, suffix = owned_db
    with pg.with_db(name).connect() as conn:  # a policy needs its role, --no-owner or not
        conn.execute("DROP POLICY tenant_t1 ON invoice")
    src = source(local_repo)
    assert src.run("backup", "db", "--database", name).code == 0
    restored = src.run("restore", "db", "--no-owner", "--to", dsn(new_server, name))
    assert restored.code == 0, restored.err
    assert "created" not in restored.out
    assert one_row(new_server, f"SELECT count(*) FROM pg_roles WHERE rolname LIKE '%{suffix}'") == (
        0,
    )
    target = new_server.with_db(name)
    assert one_row(
        target, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'invoice'"
    ) == ("postgres",)
