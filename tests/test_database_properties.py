"""The pure parts of the database properties: list settings split as PostgreSQL reads
them, statements that quote every name, and the drill's comparison, which fails on any
difference."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from backdrill.pg.database_properties import (
    DatabaseGrant,
    DatabaseProperties,
    compare_properties,
    create_statement,
    setting_statement,
    split_list_setting,
)
from backdrill.pg.roles import RoleFacts

PROPS = DatabaseProperties(
    owner="app",
    encoding="LATIN1",
    collate="C",
    ctype="C",
    settings=["search_path=app, public", "work_mem=12MB"],
    comment="ledger",
    grants=[DatabaseGrant(grantee="PUBLIC", privilege="CONNECT")],
    tablespaces=["fast"],
)


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ('"$user", public', ["$user", "public"]),
        ("app,public", ["app", "public"]),
        ('"a,b" , "x""y", c', ["a,b", 'x"y', "c"]),
        ("", []),
    ],
)
def test_list_settings_split_as_postgresql_reads_them(value: str, names: list[str]) -> None:
    assert split_list_setting(value) == names


def test_statements_quote_hostile_names() -> None:
    text = setting_statement('db"; DROP', 'search_path="x"", y", public').as_string(None)
    assert text == 'ALTER DATABASE "db""; DROP" SET "search_path" TO \'x", y\', \'public\''
    create = create_statement("d'b", PROPS.model_copy(update={"collate": "x' y"}), 15)
    assert create.as_string(None) == (
        "CREATE DATABASE \"d'b\" TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'x'' y' "
        "LC_CTYPE 'C' LOCALE_PROVIDER libc"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"encoding": "UTF8"},
        {"collate": "C.UTF-8"},
        {"settings": ["search_path=app, public"]},
        {"comment": None},
        {"grants": None},
        {"owner": "postgres"},
    ],
)
def test_the_drill_check_fails_on_any_difference(change: dict[str, object]) -> None:
    assert compare_properties(PROPS, PROPS).status == "pass"
    check = compare_properties(PROPS, PROPS.model_copy(update=change))
    assert check.status == "fail"
    assert next(iter(change)) in check.detail


def test_tablespaces_are_not_compared_and_old_manifests_skip() -> None:
    assert compare_properties(PROPS, PROPS.model_copy(update={"tablespaces": []})).status == "pass"
    assert compare_properties(None, PROPS).status == "skip"


def test_manifest_names_and_settings_are_bounded() -> None:
    with pytest.raises(ValidationError):
        RoleFacts(name="r" * 300)
    with pytest.raises(ValidationError):
        RoleFacts(name="r", member_of=["m" * 300])
    with pytest.raises(ValidationError):
        RoleFacts(name="a\x00b")
    with pytest.raises(ValidationError):
        PROPS.model_validate({**PROPS.model_dump(), "comment": "a\x00b"})
    with pytest.raises(ValidationError):
        PROPS.model_validate({**PROPS.model_dump(), "settings": ["x=" + "y" * 5000]})
