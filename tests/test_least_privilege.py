"""A login that is not a superuser (like DigitalOcean's ``doadmin``: LOGIN CREATEDB
CREATEROLE): what it may read backs up, drills and restores; what it may not read is
named with PostgreSQL's reason before any dump starts."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backdrill.pg import binaries
from backdrill.pg.connection import ConnParams
from backdrill.pg.privileges import Unreadable, denial_message, unreadable_objects
from backdrill.pg.role_restore import Login, creatable
from backdrill.pg.roles import RoleFacts
from helpers.cli import Cli, Repo, Result, SampleCli, write_config
from helpers.pgobjects import dsn
from helpers.repo import list_keys, manifests


@dataclass
class App:
    login: ConnParams  # the non-superuser, connected to its own database
    database: str


@pytest.fixture
def app(pg: ConnParams) -> Iterator[App]:
    """A role LOGIN CREATEDB CREATEROLE and a database it owns, with tables it owns."""
    suffix = secrets.token_hex(3)
    role, database, password = f"app_{suffix}", f"appdb_{suffix}", secrets.token_hex(12)
    with pg.connect() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN CREATEDB CREATEROLE PASSWORD '{password}'")
        conn.execute(f"CREATE DATABASE {database} OWNER {role}")
    login = ConnParams(pg.host, pg.port, role, password, "disable", dbname=database)
    with login.connect() as conn:
        conn.execute("CREATE TABLE partner (id serial PRIMARY KEY, name text)")
        conn.execute("INSERT INTO partner (name) SELECT 'p' || g FROM generate_series(1, 50) g")
    yield App(login, database)
    with pg.connect() as conn:  # every database and role of the test carries the suffix
        for (name,) in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"%{suffix}%",)
        ).fetchall():
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        for (name,) in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"%{suffix}%",)
        ).fetchall():
            conn.execute(f'DROP OWNED BY "{name}" CASCADE')
            conn.execute(f'DROP ROLE "{name}"')


AppCli = Callable[..., Cli]


@pytest.fixture
def app_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], app: App) -> AppCli:
    """``app_cli(repo, work=None, **sections)``: the CLI connecting as the app's login,
    drills reporting to ``tmp_path / "reports"`` (and working in ``work``)."""

    def configure(repo: Repo, work: Path | None = None, **sections: Any) -> Cli:
        drill = {"report_dir": str(tmp_path / "reports")}
        if work is not None:
            drill["work_dir"] = str(work)
        return Cli(
            capsys, write_config(tmp_path / "c.yaml", app.login, repo, drill=drill, **sections)
        )

    return configure


def _restore_as_the_login(
    cli: Cli, app: App, database: str, target: str, monkeypatch: pytest.MonkeyPatch
) -> Result:
    """``restore db`` of ``database`` into ``target``, connecting as the app's login."""
    monkeypatch.setenv("PGPASSWORD", app.login.password or "")
    return cli("restore", "db", "--to", dsn(app.login, target), "--database", database)


def _backed_up_then_dropped(sample_cli: SampleCli, pg: ConnParams, source: str) -> Cli:
    """``source`` backed up (by the superuser), then dropped: the CLI, to restore it."""
    cli = sample_cli(database=source)
    assert cli("backup", "db").code == 0
    with pg.connect() as conn:
        conn.execute(f"DROP DATABASE {source} WITH (FORCE)")
    return cli


def test_a_non_superuser_backs_up_drills_and_restores_its_own_database(
    app_cli: AppCli,
    app: App,
    local_repo: Repo,
    work_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli = app_cli(local_repo, work=work_dir, databases=[app.database])
    backed = cli("backup", "db")
    assert backed.code == 0, backed.err
    (manifest,) = manifests(local_repo)
    assert [r["name"] for r in manifest["roles"]] == [app.login.user]

    drilled = cli("drill", "run")
    assert drilled.code == 0, drilled.out + drilled.err

    target = f"{app.database}_restored"
    restored = _restore_as_the_login(cli, app, app.database, target, monkeypatch)
    assert restored.code == 0, restored.out + restored.err
    with app.login.with_db(target).connect() as conn:
        row = conn.execute(
            "SELECT count(*), pg_get_userbyid(relowner) FROM partner, pg_class "
            "WHERE relname = 'partner' GROUP BY 2"
        ).fetchone()
    assert row == (50, app.login.user)


def test_a_table_the_login_may_not_read_is_named_before_the_dump(
    app_cli: AppCli, pg: ConnParams, app: App, repo: Repo
) -> None:
    with pg.with_db(app.database).connect() as conn:
        conn.execute("CREATE TABLE res_partner_secret (id int)")
        conn.execute("REVOKE ALL ON res_partner_secret FROM PUBLIC")
    cli = app_cli(repo, databases=[app.database])
    result = cli("--log-format", "text", "backup", "db")
    assert result.code == 5, result.err
    errors = [ln for ln in result.err.splitlines() if "error" in ln]
    assert len(errors) == 1, result.err
    assert "public.res_partner_secret" in errors[0]
    assert "permission denied" in errors[0]
    assert "snapshot" not in errors[0]
    assert [k for k in list_keys(repo) if k.startswith("db/")] == []


def test_all_backs_up_what_the_login_can_read_and_names_the_rest(
    app_cli: AppCli, pg: ConnParams, app: App, local_repo: Repo
) -> None:
    closed, unreadable = f"{app.database}_closed", f"{app.database}_unreadable"
    with pg.connect() as conn:
        conn.execute(f"CREATE DATABASE {closed}")
        conn.execute(f"REVOKE CONNECT ON DATABASE {closed} FROM PUBLIC")
        conn.execute(f"CREATE DATABASE {unreadable}")
    with pg.with_db(unreadable).connect() as conn:
        conn.execute("CREATE TABLE secret_table (id int)")
        conn.execute("REVOKE ALL ON secret_table FROM PUBLIC")
    try:
        result = app_cli(local_repo)("--log-format", "text", "backup", "db", "--all")
        assert result.code == 5, result.err
        backed = {m["database"] for m in manifests(local_repo)}
        assert app.database in backed
        assert closed not in backed and unreadable not in backed
        lines = result.err.splitlines()
        (closed_line,) = [ln for ln in lines if f"backup of {closed} failed" in ln]
        assert "permission denied" in closed_line
        (unreadable_line,) = [ln for ln in lines if f"backup of {unreadable} failed" in ln]
        assert "public.secret_table" in unreadable_line
        assert "permission denied" in unreadable_line
        assert [k for k in list_keys(local_repo) if k.startswith("globals/")], result.err
    finally:
        with pg.connect() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {closed} WITH (FORCE)")
            conn.execute(f"DROP DATABASE IF EXISTS {unreadable} WITH (FORCE)")


def test_restore_by_a_non_superuser_creates_roles_it_may_and_says_what_differs(
    sample_cli: SampleCli, pg: ConnParams, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backup (by a superuser) references an owner role and a BYPASSRLS role the
    server no longer has: the non-superuser creates both (the second without BYPASSRLS,
    and says so), becomes a member of them, gives the database to its recorded owner."""
    suffix = app.database.removeprefix("appdb_")
    owner, reader, source = f"owner_{suffix}", f"reader_{suffix}", f"src_{suffix}"
    with pg.connect() as conn:
        conn.execute(f"CREATE ROLE {owner} NOLOGIN")
        conn.execute(f"CREATE ROLE {reader} NOLOGIN BYPASSRLS")
        conn.execute(f"CREATE DATABASE {source} OWNER {owner}")
    with pg.with_db(source).connect() as conn:
        conn.execute(f"CREATE TABLE t (id int); ALTER TABLE t OWNER TO {owner}")
        conn.execute(f"INSERT INTO t SELECT generate_series(1, 7); GRANT SELECT ON t TO {reader}")
    cli = _backed_up_then_dropped(sample_cli, pg, source)
    with pg.connect() as conn:
        conn.execute(f"DROP ROLE {owner}")
        conn.execute(f"DROP ROLE {reader}")

    target = f"{app.database}_copy"
    result = _restore_as_the_login(cli, app, source, target, monkeypatch)
    assert result.code == 0, result.out + result.err
    assert f"role {reader} was created without BYPASSRLS" in result.out
    with pg.with_db(target).connect() as conn:
        row = conn.execute(
            "SELECT pg_get_userbyid(d.datdba), (SELECT count(*) FROM t), "
            "(SELECT rolbypassrls FROM pg_roles WHERE rolname = %s), "
            "has_table_privilege(%s, 't', 'SELECT') "
            "FROM pg_database d WHERE d.datname = current_database()",
            (reader, reader),
        ).fetchone()
    assert row == (owner, 7, False, True)


def test_restore_names_an_owner_the_login_may_not_give_the_database_to(
    sample_cli: SampleCli, pg: ConnParams, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorded owner exists and the login is not a member of it: one clear error
    before any database is created."""
    suffix = app.database.removeprefix("appdb_")
    owner, source = f"owner_{suffix}", f"src_{suffix}"
    with pg.connect() as conn:
        conn.execute(f"CREATE ROLE {owner} NOLOGIN")
        conn.execute(f"CREATE DATABASE {source} OWNER {owner}")
    cli = _backed_up_then_dropped(sample_cli, pg, source)
    with pg.connect() as conn:
        before = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}

    result = _restore_as_the_login(cli, app, source, f"{app.database}_copy", monkeypatch)
    assert result.code == 5, result.out + result.err
    assert f"is not a member of its recorded owner, role {owner}" in result.err
    with pg.connect() as conn:
        after = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
    assert after == before


def test_config_check_lists_what_the_login_lacks(
    app_cli: AppCli, pg: ConnParams, app: App, local_repo: Repo
) -> None:
    with pg.connect() as conn:
        conn.execute(f"ALTER ROLE {app.login.user} NOCREATEROLE")
    with pg.with_db(app.database).connect() as conn:
        conn.execute("CREATE TABLE secret_table (id int)")
        conn.execute("REVOKE ALL ON secret_table FROM PUBLIC")
    result = app_cli(local_repo, databases=[app.database])("config", "check")
    assert result.code != 0, result.out
    out = " ".join(result.out.split())
    assert f"login {app.login.user} is not a superuser: OK" in out
    assert "lacks CREATEROLE: restore db cannot create missing roles" in out
    assert "cannot read table public.secret_table (permission denied)" in out


def test_the_pre_flight_names_schemas_sequences_and_large_objects_too(
    pg: ConnParams, app: App
) -> None:
    with pg.with_db(app.database).connect() as conn:
        conn.execute("CREATE SCHEMA hidden; REVOKE ALL ON SCHEMA hidden FROM PUBLIC")
        conn.execute("CREATE SEQUENCE secret_seq; REVOKE ALL ON secret_seq FROM PUBLIC")
        row = conn.execute("SELECT lo_create(0)").fetchone()
        assert row is not None
        lo = int(str(row[0]))
    with app.login.connect() as conn:
        denied = {o.describe() for o in unreadable_objects(conn)}
        assert denied == {"schema hidden", "sequence public.secret_seq", f"large object {lo}"}
    with pg.with_db(app.database).connect() as conn:
        conn.execute(f"GRANT SELECT ON LARGE OBJECT {lo} TO PUBLIC")
        conn.execute(f"GRANT USAGE ON SCHEMA hidden TO {app.login.user}")
        conn.execute(f"GRANT SELECT ON secret_seq TO {app.login.user}")
    with app.login.connect() as conn:
        assert unreadable_objects(conn) == []


def test_a_non_superuser_creates_what_it_may_of_a_recorded_role() -> None:
    plain = Login("app", superuser=False, createrole=True)
    mighty = RoleFacts(name="r", superuser=True, replication=True, login=True)
    made, note = creatable(mighty, plain)
    assert made is not None and not made.superuser and not made.replication and made.login
    assert note is not None and "without SUPERUSER, REPLICATION" in note
    assert creatable(mighty, Login("postgres", superuser=True, createrole=True)) == (mighty, None)
    made, note = creatable(RoleFacts(name="r"), Login("app", superuser=False, createrole=False))
    assert made is None and note is not None and "lacks CREATEROLE" in note


def test_the_denial_is_one_bounded_line() -> None:
    many = [Unreadable("table", f"public.t{i}") for i in range(40)]
    message = denial_message("app", "db", many)
    assert "permission denied for table public.t0" in message
    assert "and 35 more" in message and "public.t5;" not in message


def test_a_table_under_row_level_security_is_named_before_the_dump(
    pg: ConnParams, app: App
) -> None:
    """pg_dump reads with row_security off: a policy the login is subject to fails it."""
    with pg.with_db(app.database).connect() as conn:
        conn.execute("CREATE TABLE guarded (id int); ALTER TABLE guarded ENABLE ROW LEVEL SECURITY")
        conn.execute(f"GRANT SELECT ON guarded TO {app.login.user}")
    with app.login.connect() as conn:
        (denied,) = unreadable_objects(conn)
    assert denied.reason().startswith("row-level security policy for table public.guarded")
    # and pg_dump itself fails on it (the pre-flight refuses no backup that would work)
    pg_dump = binaries.find_program("pg_dump", 15)
    env = {**os.environ, **app.login.child_env()}
    done = subprocess.run(
        [str(pg_dump.path), "--schema-only", "--format=custom", "--no-sync", "--file=/dev/null"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr  # the schema is readable...
    done = subprocess.run(
        [str(pg_dump.path), "--format=custom", "--no-sync", "--file=/dev/null"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0 and "row-level security" in done.stderr  # ...the rows not
