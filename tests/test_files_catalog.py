"""Pure decisions over snapshots: selection, the drill's pairing, the backup plan."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backdrill.files.catalog import latest_snapshot, select_snapshot, select_snapshot_after
from backdrill.files.plan import plan_backup
from backdrill.files.snapshot import LEGACY_VERSION, FileEntry, Snapshot, parse_snapshot
from backdrill.files.source import SourceItem, safe_relative_path
from backdrill.repository.zstdio import compressed
from backdrill.runtime.errors import IntegrityError, NotFound, UsageError
from backdrill.services.verify_files import parse_subset, pick_subset
from backdrill.storage.local import LocalStorage
from helpers.snapshots import empty_snapshot

T0 = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)


def snap(hours: float, name: str = "odoo") -> Snapshot:
    created = T0 + timedelta(hours=hours)
    snapshot_id = f"{created:%Y%m%dT%H%M%SZ}-{int(hours * 10) % 1000:06d}"
    return empty_snapshot(LEGACY_VERSION, snapshot_id, created, name, entries=[], skipped=[])


@pytest.mark.parametrize(
    ("db_backup_hours", "expected_hours", "after"),
    [
        (-1, 0, True),  # db at 03:00, files at 04:00 the same night
        (0, 0, True),  # taken at the very moment
        (23, 24, True),  # the next night's files snapshot, not the earlier one
        (49, 48, False),  # nothing after: the newest before, flagged
    ],
)
def test_snapshot_after_a_db_backup_is_the_nearest_after_else_newest_before_flagged(
    db_backup_hours: float, expected_hours: float, after: bool
) -> None:
    snapshots = [snap(h) for h in (24, 0, 48)]
    choice = select_snapshot_after(snapshots, T0 + timedelta(hours=db_backup_hours))
    assert choice.snapshot.id == snap(expected_hours).id
    assert choice.after is after


def test_snapshot_after_with_no_snapshot_is_not_found() -> None:
    with pytest.raises(NotFound):
        select_snapshot_after([], T0)


def test_select_latest_by_id_before_and_by_source() -> None:
    snapshots = [snap(h) for h in (0, 24, 48)]
    assert select_snapshot(snapshots).id == snap(48).id
    assert select_snapshot(snapshots, snap(24).id).id == snap(24).id
    assert select_snapshot(snapshots, before=T0 + timedelta(hours=30)).id == snap(24).id
    with pytest.raises(NotFound, match="no committed files snapshot with id"):
        select_snapshot(snapshots, "20990101T000000Z-000000")
    mixed = [*snapshots, snap(50, "other")]
    with pytest.raises(UsageError, match="--source-name"):
        select_snapshot(mixed)
    assert select_snapshot(mixed, source_name="odoo").id == snap(48).id


def _entry(path: str, size: int = 3, mtime: int = 10, etag: str | None = None) -> FileEntry:
    return FileEntry(
        path=path,
        size=size,
        mtime_ns=mtime,
        mode=0o644,
        sha256="a" * 64,
        stored="raw",
        stored_size=size,
        etag=etag,
    )


def test_plan_reuses_only_unchanged_entries_whose_object_is_stored() -> None:
    previous = {p: _entry(p) for p in ("same", "touched", "grown", "lost")}
    previous["changed-last-time"] = _entry("changed-last-time").model_copy(
        update={"status": "changed"}
    )
    items = [
        SourceItem("same", "file", 3, 10, 0o600),
        SourceItem("touched", "file", 3, 11, 0o644),
        SourceItem("grown", "file", 4, 10, 0o644),
        SourceItem("changed-last-time", "file", 3, 10, 0o644),
        SourceItem("new", "file", 3, 10, 0o644),
        SourceItem("link", "symlink", 0, 10, 0o777, target="same"),
    ]
    plan = plan_backup(items, previous, {"a" * 64: 3})
    assert [e.path for e in plan.reused] == ["same"]
    assert plan.reused[0].mode == 0o600  # the current mode, not the recorded one
    assert [i.path for i in plan.to_read] == ["touched", "grown", "changed-last-time", "new"]
    assert [(e.path, e.target) for e in plan.links] == [("link", "same")]
    assert plan_backup(items[:1], previous, {}).to_read == items[:1]  # object gone
    assert plan_backup(items[:1], previous, {"a" * 64: 3}, rehash=True).to_read == items[:1]


def test_plan_for_s3_sources_compares_etag_and_size() -> None:
    previous = {"k": _entry("k", etag='"e1"')}
    stored = {"a" * 64: 3}
    same = SourceItem("k", "file", 3, 99, 0o644, etag='"e1"')
    other = SourceItem("k", "file", 3, 10, 0o644, etag='"e2"')
    assert plan_backup([same], previous, stored).reused
    assert plan_backup([other], previous, stored).to_read == [other]


def test_subset_is_a_ceiling_fraction_of_distinct_objects() -> None:
    shas = [f"{i:064x}" for i in range(25)]
    picked = pick_subset(shas, parse_subset("10%"), random.Random(1))
    assert len(picked) == 3 and len(set(picked)) == 3
    assert pick_subset(shas, 1.0, random.Random(1)) == shas
    for bad in ("0", "101%", "x"):
        with pytest.raises(ValueError):
            parse_subset(bad)


@pytest.mark.parametrize(
    ("path", "safe"),
    [
        ("ab/cd", True),
        ("a", True),
        ("/etc/passwd", False),
        ("a/../b", False),
        ("a//b", False),
        ("", False),
    ],
)
def test_safe_relative_paths(path: str, safe: bool) -> None:
    assert safe_relative_path(path) is safe


def test_snapshot_parsing_is_strict() -> None:
    good = snap(0)
    assert parse_snapshot(good.encode(), good.key()) == good
    with pytest.raises(IntegrityError, match="not a valid zstd stream"):
        parse_snapshot(b"junk", "k")
    for version, problem in (
        (4, "schema_version 4"),
        (2, "lists its chunks"),
        (3, "lists its chunks"),
    ):
        with pytest.raises(IntegrityError, match=problem):
            parse_snapshot(
                compressed(
                    good.model_dump_json()
                    .replace('"schema_version":1', f'"schema_version":{version}')
                    .encode()
                ),
                "k",
            )
    with pytest.raises(IntegrityError, match="file_count"):
        parse_snapshot(
            compressed(good.model_dump_json().replace('"file_count":0,', "").encode()), "k"
        )


def test_latest_snapshot_orders_two_of_the_same_second_by_creation_time(tmp_path: Path) -> None:
    """Ids sort by time to the second only; within a second the random suffix must not
    decide which snapshot an incremental backup builds on."""
    storage = LocalStorage(tmp_path)
    first, second = snap(0), snap(0)
    first = first.model_copy(update={"id": first.id[:-6] + "ffffff"})
    second = second.model_copy(
        update={"id": second.id[:-6] + "000000", "created_at": T0 + timedelta(milliseconds=400)}
    )
    older = snap(-1)
    for snapshot in (older, first, second):
        storage.put_bytes(snapshot.key(), snapshot.encode())
    latest = latest_snapshot(storage, "odoo")
    assert latest is not None and latest.id == second.id
    storage.put_bytes(first.key(), b"broken")  # an unreadable newest is passed over
    assert latest_snapshot(storage, "odoo") == second
    storage.delete(second.key())
    storage.delete(first.key())
    assert latest_snapshot(storage, "odoo") == older
