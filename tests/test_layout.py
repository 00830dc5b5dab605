"""The repository layout: one module spells every key; its parsers refuse what is not theirs."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backdrill.files.source import DirSource
from backdrill.repository import layout

SRC = Path(__file__).resolve().parents[1] / "src" / "backdrill"
KEY_STRINGS = (
    '"db/',
    '"files/',
    '"evidence/',
    '"locks/',
    '"globals/',
    '"snapshots/',
    '"status/',
    '"sources/',
    '"packs/',
)


def test_key_strings_live_in_the_layout_module_only() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "repository" / "layout.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if any(s in code or s.replace('"', "'") in code for s in KEY_STRINGS):
                offenders.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    assert offenders == []


@pytest.mark.parametrize("source", [layout.DEFAULT_SOURCE, "supabase", "a/b", "%41"])
def test_backup_keys_round_trip_any_database_and_source_name(source: str) -> None:
    for database in ("odoo", "a/b", "..", "naïve db", "%2F"):
        key = layout.manifest_key(database, "20261126T030000Z-1a2b3c", source)
        assert key.count("/") == (3 if source == layout.DEFAULT_SOURCE else 5)
        assert layout.split_backup_key(key) == (
            source,
            database,
            "20261126T030000Z-1a2b3c",
            layout.MANIFEST_NAME,
        )
        assert layout.database_of(key) == (source, database)
    assert layout.manifest_key("odoo", "x") == "db/odoo/x/manifest.json"  # as ever
    assert layout.split_globals_key(layout.globals_key("x1", source), source) == "x1"


def test_a_named_source_never_shares_a_key_with_the_default_one() -> None:
    assert layout.db_dir("postgres", "supabase") != layout.db_dir("postgres")
    assert layout.split_source("sources/supabase/db/postgres/x/manifest.json") == (
        "supabase",
        "db/postgres/x/manifest.json",
    )
    for other in ("sources//db/x/y/z", "sources/a/files/x", "sources/%2e%2e/db/x/y/z"):
        found = layout.split_source(other)
        assert found is None or found[0] not in ("", ".."), other


@pytest.mark.parametrize(
    "key",
    [
        "db/",
        "db/odoo",
        "db/odoo/x",
        "db/odoo/x/y/z",
        "db//x/y",
        "files/odoo/x/y",
        "dbx/a/b/c",
        "sources/s/globals/x.sql.zst",
        "sources/s/db/a/b",
    ],
)
def test_split_backup_key_refuses_other_shapes(key: str) -> None:
    assert layout.split_backup_key(key) is None


def test_snapshot_keys() -> None:
    key = layout.snapshot_key("filestore", "20261126T040000Z-1a2b3c")
    assert key == "files/filestore/snapshots/20261126T040000Z-1a2b3c.json.zst"
    assert layout.split_snapshot_key(key) == ("filestore", "20261126T040000Z-1a2b3c")
    for other in (
        "files/objects/ab/" + "ab" * 32,
        "files/filestore/snapshots/x.json",
        "files/filestore/snapshots/a/b.json.zst",
        "files//snapshots/x.json.zst",
        "files/filestore/snapshots/.json.zst",
        "db/filestore/snapshots/x.json.zst",
    ):
        assert layout.split_snapshot_key(other) is None, other


def test_globals_reports_locks() -> None:
    assert layout.split_globals_key(layout.globals_key("20261126T030000Z-1a2b3c")) == (
        "20261126T030000Z-1a2b3c"
    )
    assert layout.split_globals_key("globals/a/b.sql.zst") is None
    assert layout.split_globals_key("globals/x.sql") is None
    assert layout.split_report_key(layout.report_key("d1", "report.md")) == ("d1", "report.md")
    assert layout.split_report_key("evidence/d1/x/report.json") is None
    assert layout.lock_scope_of(layout.lock_key("db-odoo")) == "db-odoo"
    assert layout.lock_scope_of("locks/") is None
    assert layout.lock_scope_of("db/x") is None


def test_id_time() -> None:
    assert layout.id_time("20261126T030000Z-1a2b3c") == datetime(2026, 11, 26, 3, tzinfo=UTC)
    assert layout.id_time("not-an-id") is None
    assert layout.id_time("") is None


def test_one_source_name_rule(tmp_path: Path) -> None:
    """``/`` was ``root`` for the walker and None for status: one rule now."""
    assert layout.source_name("/") == "root"
    assert DirSource(Path("/")).name == layout.source_name("/")
    assert layout.source_name(str(tmp_path / "filestore") + "/") == "filestore"
    assert DirSource(tmp_path / "filestore").name == "filestore"
    assert layout.source_name("s3://bucket/a/filestore") == "filestore"
    assert layout.source_name("s3://bucket") == "bucket"
    assert layout.source_name("/x", "named") == "named"
    assert layout.source_name(None) is None
    assert not layout.is_source_name("objects")
    assert not layout.is_source_name("..")
    assert layout.is_source_name("filestore")
    assert re.fullmatch(r"[0-9a-f]{64}", "ab" * 32)
    assert layout.file_object_key("ab" * 32, encrypted=True).endswith(".age")
