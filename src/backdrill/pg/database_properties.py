"""A database's own properties, which pg_dump leaves out without ``--create``: encoding,
collation, ctype, locale provider, owner, ``ALTER DATABASE … SET`` settings, comment,
grants, and the tablespaces its objects use. Recorded at backup time, applied to the
database a restore creates, and compared after a drill."""

from __future__ import annotations

from typing import Annotated, Literal, cast

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field

from backdrill.odoo.checks import Check
from backdrill.pg.connection import as_text, first_line
from backdrill.pg.roles import NO_NUL
from backdrill.runtime.errors import PostgresError

TEXT_LIMIT = 4096
#: one setting (``name=value``) or a tablespace name, as a manifest may hold it
Setting = Annotated[str, Field(max_length=TEXT_LIMIT, pattern=NO_NUL)]
Name = Annotated[str, Field(max_length=256, pattern=NO_NUL)]
Text = Annotated[str, Field(max_length=TEXT_LIMIT, pattern=NO_NUL)]
#: settings whose value is a list of names, each given as its own literal
LIST_SETTINGS = frozenset(
    {"search_path", "temp_tablespaces", "session_preload_libraries", "local_preload_libraries"}
)

_PROPERTIES_SQL = """
SELECT pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
       {provider}, {icu},
       (SELECT s.setconfig FROM pg_db_role_setting s
        WHERE s.setdatabase = d.oid AND s.setrole = 0),
       shobj_description(d.oid, 'pg_database'), d.datacl IS NULL,
       ARRAY(SELECT DISTINCT t.spcname FROM pg_tablespace t
             WHERE (t.oid IN (SELECT c.reltablespace FROM pg_class c WHERE c.reltablespace <> 0)
                OR t.oid = d.dattablespace) AND t.spcname NOT IN ('pg_default', 'pg_global')
             ORDER BY 1)
FROM pg_database d WHERE d.datname = current_database()
"""
_GRANTS_SQL = """
SELECT coalesce(g.rolname, 'PUBLIC'), a.privilege_type, a.is_grantable
FROM pg_database d, aclexplode(d.datacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee
WHERE d.datname = current_database() ORDER BY 1, 2
"""


class DatabaseGrant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    grantee: Name  # a role name, or PUBLIC
    privilege: Literal["CONNECT", "CREATE", "TEMPORARY"]
    grantable: bool = False


class DatabaseProperties(BaseModel):
    """What ``CREATE DATABASE`` and ``ALTER DATABASE`` must say for a faithful copy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    owner: Name
    encoding: Text
    collate: Text
    ctype: Text
    locale_provider: Literal["libc", "icu"] = "libc"
    icu_locale: Text | None = None
    #: ``name=value`` as pg_db_role_setting holds them
    settings: list[Setting] = Field(default_factory=list, max_length=1000)
    comment: Annotated[str, Field(max_length=1 << 20, pattern=NO_NUL)] | None = None
    #: None: the default privileges (no GRANT or REVOKE ever ran)
    grants: list[DatabaseGrant] | None = Field(default=None, max_length=10_000)
    tablespaces: list[Name] = Field(default_factory=list, max_length=10_000)

    def comparable(self) -> dict[str, object]:
        """What a restored copy must have equal (tablespaces are restored without)."""
        out = self.model_dump(exclude={"tablespaces"})
        out["settings"] = sorted(self.settings)
        out["grants"] = None if self.grants is None else sorted(self.grants, key=repr)
        return out


def read_properties(conn: psycopg.Connection[tuple[object, ...]]) -> DatabaseProperties:
    """The properties of the connected database."""
    version = conn.info.server_version
    icu = "d.datlocale" if version >= 170000 else "d.daticulocale"
    query = _PROPERTIES_SQL.format(
        provider="d.datlocprovider::text" if version >= 150000 else "'c'",
        icu=icu if version >= 150000 else "NULL",
    )
    row = conn.execute(query).fetchone()
    assert row is not None
    grants = None
    if not row[8]:
        grants = [
            DatabaseGrant.model_validate(
                {"grantee": as_text(g), "privilege": as_text(p), "grantable": o}
            )
            for g, p, o in conn.execute(_GRANTS_SQL).fetchall()
        ]
    return DatabaseProperties(
        owner=as_text(row[0]),
        encoding=as_text(row[1]),
        collate=as_text(row[2]),
        ctype=as_text(row[3]),
        locale_provider="icu" if as_text(row[4]) == "i" else "libc",
        icu_locale=as_text(row[5]) if row[5] is not None else None,
        settings=[as_text(s) for s in cast("list[object]", row[6] or [])],
        comment=as_text(row[7]) if row[7] is not None else None,
        grants=grants,
        tablespaces=[as_text(t) for t in cast("list[object]", row[9])],
    )


def create_statement(name: str, props: DatabaseProperties | None, major: int) -> sql.Composed:
    """``CREATE DATABASE`` from template0 with the recorded encoding and locale."""
    query = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
    if props is None:
        return query
    parts: list[sql.Composable] = [
        query,
        sql.SQL("ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
            sql.Literal(props.encoding), sql.Literal(props.collate), sql.Literal(props.ctype)
        ),
    ]
    if props.locale_provider == "icu":
        if major < 15:
            raise PostgresError(
                f"the database uses the ICU locale {props.icu_locale}: the target server "
                f"(PostgreSQL {major}) has no ICU locale provider for databases"
            )
        parts.append(
            sql.SQL("LOCALE_PROVIDER icu ICU_LOCALE {}").format(sql.Literal(props.icu_locale))
        )
    elif major >= 15:
        parts.append(sql.SQL("LOCALE_PROVIDER libc"))
    return sql.SQL(" ").join(parts)


def split_list_setting(value: str) -> list[str]:
    """A flattened list setting (``"$user", public``) into its names, as PostgreSQL's
    SplitGUCList reads it: commas separate, double quotes quote, ``""`` is a quote."""
    names: list[str] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i].isspace():
            i += 1
        if i < n and value[i] == '"':
            name, i = _quoted_name(value, i + 1)
            while i < n and value[i] != ",":
                i += 1
        else:
            end = value.find(",", i)
            end = n if end < 0 else end
            name, i = value[i:end].strip(), end
        names.append(name)
        i += 1
    return [name for name in names if name]


def _quoted_name(value: str, i: int) -> tuple[str, int]:
    """The name that starts after an opening quote at ``i - 1``, and where it ends."""
    out: list[str] = []
    while i < len(value):
        if value[i] == '"':
            if value[i + 1 : i + 2] != '"':
                return "".join(out), i + 1
            i += 1
        out.append(value[i])
        i += 1
    return "".join(out), i


def setting_statement(database: str, setting: str) -> sql.Composed:
    """``ALTER DATABASE … SET name TO value`` for one ``name=value`` of the manifest."""
    name, sep, value = setting.partition("=")
    if not sep or not name:
        raise PostgresError(f"the recorded database setting {setting[:80]!r} is malformed")
    values = split_list_setting(value) if name.lower() in LIST_SETTINGS else [value]
    literal = sql.SQL(", ").join(sql.Literal(v) for v in values) if values else sql.Literal("")
    return sql.SQL("ALTER DATABASE {} SET {} TO {}").format(
        sql.Identifier(database), sql.Identifier(*name.split(".")), literal
    )


def property_statements(
    database: str, props: DatabaseProperties, *, owner_and_grants: bool
) -> list[sql.Composed]:
    """What follows ``CREATE DATABASE``: owner, settings, comment, grants."""
    db = sql.Identifier(database)
    out = [setting_statement(database, s) for s in props.settings]
    if props.comment is not None:
        out.append(sql.SQL("COMMENT ON DATABASE {} IS {}").format(db, sql.Literal(props.comment)))
    if not owner_and_grants:
        return out
    owner = sql.Identifier(props.owner)
    out.append(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, owner))
    if props.grants is not None:
        out.append(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC, {}").format(db, owner))
        for grant in props.grants:
            grantee = (
                sql.SQL("PUBLIC") if grant.grantee == "PUBLIC" else sql.Identifier(grant.grantee)
            )
            option = sql.SQL(" WITH GRANT OPTION") if grant.grantable else sql.SQL("")
            out.append(
                sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                    sql.SQL(grant.privilege), db, grantee, option
                )
            )
    return out


def apply_statements(
    conn: psycopg.Connection[tuple[object, ...]], statements: list[sql.Composed], what: str
) -> None:
    for statement in statements:
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            raise PostgresError(f"{what}: {first_line(exc)}") from None


def compare_properties(expected: DatabaseProperties | None, actual: DatabaseProperties) -> Check:
    """The restored database's properties equal the recorded ones."""
    if expected is None:
        return Check("database_properties", "skip", "not recorded by this backup")
    want, got = expected.comparable(), actual.comparable()
    differ = [k for k in want if want[k] != got[k]]
    if not differ:
        return Check(
            "database_properties",
            "pass",
            f"encoding {got['encoding']}, collation {got['collate']}, ctype {got['ctype']}, "
            f"{len(actual.settings)} setting(s), owner, comment and grants as recorded",
        )
    shown = "; ".join(f"{k}: expected {want[k]!r}, got {got[k]!r}" for k in differ)
    return Check("database_properties", "fail", shown[:2000])


def tablespaces_check(props: DatabaseProperties | None, *, kept: bool = False) -> Check:
    """Which tablespaces the source used, and where their objects were restored."""
    if props is None:
        return Check("tablespaces", "skip", "not recorded by this backup")
    if not props.tablespaces:
        return Check("tablespaces", "pass", "the source used only the default tablespace")
    names = ", ".join(props.tablespaces)
    where = "kept" if kept else "restored into the default tablespace (--no-tablespaces)"
    return Check("tablespaces", "pass", f"the source used tablespace(s) {names}; {where}")
