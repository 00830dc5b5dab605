"""``backdrill prune`` on real storage (a local directory and S3 over HTTP via moto)."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backdrill.config.model import Config
from backdrill.repository.catalog import list_db_backups
from backdrill.repository.locks import RepoLock, db_scope
from backdrill.runtime.errors import IntegrityError
from backdrill.runtime.timeutil import new_id, utcnow
from backdrill.services.context import RunContext
from backdrill.services.prune import run_prune
from backdrill.storage.local import LocalStorage
from conftest import object_lock_bucket, s3_client, s3_repo
from helpers.cli import Cli, Repo
from helpers.history import (
    fake_db_backup,
    fake_snapshot,
    prune_config,
    put_file_object,
    storage_of,
)
from helpers.repo import list_keys, write_object
from helpers.s3proxy import FaultProxy, Rule


def prune_json(capsys: pytest.CaptureFixture[str], config: Path, *extra: str) -> dict[str, Any]:
    cli = Cli(capsys, config)
    result = cli("prune", "--json", *extra)
    assert result.code == 0, result.err
    doc: dict[str, Any] = json.loads(result.out)
    return doc


def daily_history(repo: Repo, count: int, gap_days: int = 0, db: str = "odoo") -> list[str]:
    """``count`` daily backups, the newest ``gap_days`` days (and 2 hours) old; newest first."""
    now = utcnow()
    with storage_of(repo) as storage:
        return [
            fake_db_backup(storage, db, now - timedelta(days=gap_days + i, hours=2))
            for i in range(count)
        ]


def age_local(repo: Repo, key: str, hours: float) -> None:
    path = Path(urlparse(repo.url).path) / key
    moment = time.time() - hours * 3600
    os.utime(path, (moment, moment))


@pytest.mark.slow
def test_prune_deletes_expired_backups_oldest_first_and_reports_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo
) -> None:
    ids = daily_history(repo, 40)
    config = prune_config(tmp_path / "c.yaml", repo, days=30, min_keep=7)
    doc = prune_json(capsys, config)
    deleted = [e["id"] for e in doc["deleted"]]
    assert deleted == list(reversed(ids[30:])), "the 10 oldest, oldest first"
    assert {e["id"] for e in doc["kept"]} == set(ids[:30])
    assert all(e["rule"] == "window" for e in doc["kept"])
    assert all(e["rule"] == "expired" for e in doc["deleted"])
    assert doc["bytes_freed"] == sum(e["bytes"] for e in doc["deleted"]) > 10 * 1000
    remaining = {k.split("/")[2] for k in list_keys(repo, "db/")}
    assert remaining == set(ids[:30])
    # idempotent: a second run deletes nothing
    again = prune_json(capsys, config)
    assert again["deleted"] == []
    assert again["bytes_freed"] == 0


@pytest.mark.slow
def test_prune_after_ten_days_without_backup_keeps_at_least_min_keep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    ids = daily_history(local_repo, 40, gap_days=10)
    config = prune_config(tmp_path / "c.yaml", local_repo, days=30, min_keep=25)
    doc = prune_json(capsys, config)
    kept = {e["id"]: e["rule"] for e in doc["kept"]}
    assert set(kept) == set(ids[:25])
    assert sorted(kept.values()).count("min_keep") == 5  # 20 in the window, 5 by min_keep


@pytest.mark.slow
def test_prune_refuses_while_any_manifest_is_unreadable_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo
) -> None:
    daily_history(repo, 40)
    garbage = f"db/odoo/{new_id()}/manifest.json"
    write_object(repo, garbage, b"{not json")
    future = f"db/other/{new_id()}/manifest.json"
    write_object(repo, future, json.dumps({"schema_version": 99}).encode())
    before = list_keys(repo)
    config = prune_config(tmp_path / "c.yaml", repo, days=30, min_keep=7)
    cli = Cli(capsys, config)
    result = cli("prune")
    assert result.code == 4
    assert garbage in result.err
    assert future in result.err
    assert "refuses to delete anything" in result.err
    assert list_keys(repo) == before


@pytest.mark.slow
def test_prune_dry_run_deletes_nothing_but_reports_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    daily_history(local_repo, 35)
    before = list_keys(local_repo)
    config = prune_config(tmp_path / "c.yaml", local_repo, days=30, min_keep=7)
    cli = Cli(capsys, config)
    doc = prune_json(capsys, config, "--dry-run")
    assert doc["dry_run"] is True
    assert len(doc["deleted"]) == 5
    assert list_keys(local_repo) == before
    text = cli("prune", "--dry-run")
    assert text.code == 0
    assert "would delete" in text.out


def test_prune_while_a_files_backup_uploads_deletes_none_of_its_new_objects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    now = utcnow()
    with storage_of(local_repo) as storage:
        kept_sha = put_file_object(storage, b"kept content")
        expired_sha = put_file_object(storage, b"only in an expired snapshot")
        stray_sha = put_file_object(storage, b"referenced by nothing, old")
        fake_snapshot(storage, "odoo", now - timedelta(days=60), [expired_sha, kept_sha])
        fake_snapshot(storage, "odoo", now - timedelta(days=1), [kept_sha])
        for sha in (kept_sha, expired_sha, stray_sha):
            age_local(local_repo, f"files/objects/{sha[:2]}/{sha}", hours=24 * 61)
        # a files backup running now: objects uploaded, its snapshot not written yet
        new_shas = [put_file_object(storage, f"new upload {i}".encode()) for i in range(3)]
    config = prune_config(tmp_path / "c.yaml", local_repo, days=30, min_keep=1, grace_hours=24)
    doc = prune_json(capsys, config)
    keys = set(list_keys(local_repo, "files/objects/"))
    for sha in [*new_shas, kept_sha]:
        assert f"files/objects/{sha[:2]}/{sha}" in keys
    for sha in (expired_sha, stray_sha):
        assert f"files/objects/{sha[:2]}/{sha}" not in keys
    assert [e["scope"] for e in doc["deleted"]] == ["files/odoo"]
    swept = {o["key"] for o in doc["orphans"] if o["kind"] == "unreferenced object"}
    assert swept == {f"files/objects/{s[:2]}/{s}" for s in (expired_sha, stray_sha)}
    assert doc["young_unreferenced_objects"] == 3


def test_prune_removes_uncommitted_backup_dirs_only_after_the_grace_period(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    daily_history(local_repo, 3)
    young = f"db/odoo/{new_id()}/dump.pgdump.zst"
    old = f"db/odoo/{new_id(utcnow() - timedelta(days=2))}/dump.pgdump.zst"
    write_object(local_repo, young, b"x" * 100)
    write_object(local_repo, old, b"y" * 200)
    age_local(local_repo, old, hours=30)
    config = prune_config(tmp_path / "c.yaml", local_repo, grace_hours=24)
    doc = prune_json(capsys, config)
    assert doc["orphans"] == [
        {
            "key": old.rsplit("/", 1)[0] + "/",
            "kind": "uncommitted",
            "action": "delete",
            "bytes": 200,
            "detail": "",
        }
    ]
    keys = list_keys(local_repo)
    assert young in keys
    assert old not in keys


def test_prune_aborts_multipart_uploads_left_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], s3_endpoint: str, bucket: str
) -> None:
    repo = s3_repo(s3_endpoint, bucket)
    client: Any = s3_client(s3_endpoint)
    client.create_multipart_upload(Bucket=bucket, Key=f"prod/db/odoo/{new_id()}/dump.pgdump.zst")
    config = prune_config(tmp_path / "c.yaml", repo, grace_hours=1)
    # moto reports every upload as initiated in 2010, so the grace period cannot protect
    # it there; the lock of the running backup does: its uploads are left alone
    with (
        storage_of(repo) as storage,
        RepoLock(storage, db_scope("odoo"), run_id="uploading", command="backup db"),
    ):
        busy = prune_json(capsys, config)
    assert busy["orphans"] == []
    assert "db/odoo" in busy["skipped_scopes"]
    assert len(client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1
    doc = prune_json(capsys, config)
    assert [o["kind"] for o in doc["orphans"]] == ["pending upload"]
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.slow
def test_prune_applies_retention_to_globals_by_the_time_in_their_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    now = utcnow()
    keys = [f"globals/{new_id(now - timedelta(days=d))}.sql.zst" for d in range(0, 50, 5)]
    for key in keys:
        write_object(local_repo, key, b"roles")
    write_object(local_repo, "globals/not-an-id.sql.zst", b"kept: not ours")
    config = prune_config(tmp_path / "c.yaml", local_repo, days=30, min_keep=2)
    doc = prune_json(capsys, config)
    assert {e["scope"] for e in doc["deleted"]} == {"globals"}
    remaining = set(list_keys(local_repo, "globals/"))
    assert remaining == {*keys[:6], "globals/not-an-id.sql.zst"}  # ages 0..25 days


@pytest.mark.slow
def test_prune_skips_a_database_whose_backup_holds_the_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    daily_history(local_repo, 40, db="busy")
    daily_history(local_repo, 40, db="idle")
    config = prune_config(tmp_path / "c.yaml", local_repo, days=30, min_keep=7)
    with (
        storage_of(local_repo) as storage,
        RepoLock(storage, db_scope("busy"), run_id="backup-run", command="backup db"),
    ):
        doc = prune_json(capsys, config)
    assert "db/busy" in doc["skipped_scopes"]
    assert "backup-run" in doc["skipped_scopes"]["db/busy"]
    assert {e["scope"] for e in doc["deleted"]} == {"db/idle"}
    assert len({k.split("/")[2] for k in list_keys(local_repo, "db/busy/")}) == 40
    assert list_keys(local_repo, "locks/") == []  # prune released what it took


def test_second_prune_exits_6_naming_the_holder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo
) -> None:
    daily_history(local_repo, 2)
    config = prune_config(tmp_path / "c.yaml", local_repo)
    cli = Cli(capsys, config)
    with (
        storage_of(local_repo) as storage,
        RepoLock(storage, "prune", run_id="first-prune", command="prune"),
    ):
        result = cli("prune")
    assert result.code == 6
    assert "first-prune" in result.err
    assert f"pid {os.getpid()}" in result.err


@pytest.fixture
def locked_repo(s3_endpoint: str) -> Repo:
    return s3_repo(s3_endpoint, object_lock_bucket(s3_endpoint, "locked-backups"))


def test_prune_skips_objects_under_compliance_object_lock_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], locked_repo: Repo
) -> None:
    now = utcnow()
    lock = {"object_lock": {"mode": "COMPLIANCE", "days": 1}}
    with storage_of(locked_repo, **lock) as storage:
        locked = [fake_db_backup(storage, "odoo", now - timedelta(days=40 + i)) for i in range(3)]
    with storage_of(locked_repo) as storage:
        free = [fake_db_backup(storage, "odoo", now - timedelta(days=50 + i)) for i in range(2)]
        recent = fake_db_backup(storage, "odoo", now - timedelta(hours=1))
    config = prune_config(tmp_path / "c.yaml", locked_repo, lock, days=30, min_keep=1)
    cli = Cli(capsys, config)
    result = cli("prune", "--json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert {e["id"] for e in doc["locked"]} == set(locked)
    assert all("COMPLIANCE until" in e["detail"] for e in doc["locked"])
    assert {e["id"] for e in doc["deleted"]} == set(free)
    assert {e["id"] for e in doc["kept"]} == {recent}
    remaining = {k.split("/")[2] for k in list_keys(locked_repo, "db/")}
    assert remaining == {*locked, recent}
    text = cli("prune")
    assert text.code == 0
    assert "kept under object lock" in text.out


# -- the real service over random histories (hypothesis) -------------------------------


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ages=st.lists(st.floats(min_value=-1, max_value=120, allow_nan=False), max_size=25),
    days=st.integers(1, 40),
    min_keep=st.integers(1, 10),
    unreadable=st.booleans(),
)
def test_prune_service_over_random_histories_is_safe_and_idempotent(
    tmp_path_factory: pytest.TempPathFactory,
    ages: list[float],
    days: int,
    min_keep: int,
    unreadable: bool,
) -> None:
    root = tmp_path_factory.mktemp("repo")
    config = Config.model_validate(
        {"storage": {"url": f"file://{root}"}, "retention": {"days": days, "min_keep": min_keep}}
    )
    now = utcnow()
    with LocalStorage(root) as storage:
        ctx = RunContext(config=config, storage=storage, run_id="prop")
        created = {fake_db_backup(storage, "odoo", now - timedelta(days=a)): a for a in ages}
        if unreadable:
            storage.put_bytes(f"db/odoo/{new_id()}/manifest.json", b"{")
        before = list_db_backups(storage)
        if unreadable or any(a < -0.01 for a in ages):  # 14 min ahead: beyond the skew
            assert before.broken
        if before.broken:  # unreadable, or dated in the future: nothing deleted
            with pytest.raises(IntegrityError):
                run_prune(ctx, now=now)
            assert len(list_db_backups(storage).backups) == len(before.backups)
            return
        run_prune(ctx, now=now)
        left = {m.id for m in list_db_backups(storage).backups}
        newest = sorted(created, key=lambda i: (now - timedelta(days=created[i]), i))[-min_keep:]
        assert set(newest) <= left
        assert {i for i, a in created.items() if a <= days} <= left
        again = run_prune(ctx, now=now)
        assert [e for e in again.entries if e.action == "delete"] == []
        assert {m.id for m in list_db_backups(storage).backups} == left


def test_prune_deletes_the_manifest_first_so_a_failed_delete_leaves_no_committed_half(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    proxied_repo: Repo,
    fault_proxy: FaultProxy,
) -> None:
    ids = daily_history(proxied_repo, 9)
    fault_proxy.add(Rule("error", method="DELETE", contains="dump.pgdump.zst", times=1000))
    config = prune_config(tmp_path / "c.yaml", proxied_repo, days=5, min_keep=1, grace_hours=0)
    cli = Cli(capsys, config)
    failed = cli("prune")
    assert failed.code == 5
    oldest = ids[-1]
    keys = list_keys(proxied_repo, f"db/odoo/{oldest}/")
    assert keys == [f"db/odoo/{oldest}/dump.pgdump.zst"], "manifest gone, dump left"
    fault_proxy.clear()
    doc = prune_json(capsys, config)
    assert {o["key"] for o in doc["orphans"]} == {f"db/odoo/{oldest}/"}
    assert {k.split("/")[2] for k in list_keys(proxied_repo, "db/")} == set(ids[:5])
