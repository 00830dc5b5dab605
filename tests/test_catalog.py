"""Backup selection: pure decisions over manifests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backdrill.repository.catalog import select_backup
from backdrill.repository.manifest import DbManifest
from backdrill.runtime.errors import NotFound, UsageError
from helpers.seed import db_manifest

T0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def manifest(day: int, database: str = "odoo") -> DbManifest:
    created = T0 + timedelta(days=day)
    return db_manifest(
        f"{created:%Y%m%dT%H%M%SZ}-00000{day % 10}",
        database,
        created,
        server_version="15.4",
        pg_dump_version="15.4",
        backdrill_version="0",
        run_id="r",
        host="h",
    )


def test_latest_is_the_newest_created_at() -> None:
    backups = [manifest(d) for d in (2, 0, 5, 3)]
    assert select_backup(backups).id == manifest(5).id


def test_before_picks_newest_strictly_before() -> None:
    backups = [manifest(d) for d in range(6)]
    chosen = select_backup(backups, before=T0 + timedelta(days=3))
    assert chosen.id == manifest(2).id


def test_by_id() -> None:
    backups = [manifest(d) for d in range(3)]
    assert select_backup(backups, manifest(1).id).id == manifest(1).id


def test_unknown_id_is_not_found_exit_4() -> None:
    with pytest.raises(NotFound) as info:
        select_backup([manifest(1)], "20990101T000000Z-abcdef")
    assert info.value.exit_code == 4


def test_nothing_before_is_not_found() -> None:
    with pytest.raises(NotFound, match="before"):
        select_backup([manifest(3)], before=T0)


def test_several_databases_need_a_choice() -> None:
    backups = [manifest(1, "odoo"), manifest(2, "crm")]
    with pytest.raises(UsageError, match="--database"):
        select_backup(backups)
    assert select_backup(backups, database="odoo").database == "odoo"
