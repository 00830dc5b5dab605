"""A database backup's manifest is valid only where it lies: forged manifests (an attacker
with write access to the bucket) are integrity errors named by their key, for ``verify``,
``list``, ``show``, ``drill``, ``prune`` and ``status``, on a local directory and on S3."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backdrill.policy.objectives import evaluate_rpo
from backdrill.policy.ssot import Policy
from backdrill.repository.layout import MANIFEST_NAME
from backdrill.repository.manifest import (
    DIRECTORY_FORMAT,
    DUMP_NAME,
    DbManifest,
    StoredObject,
    parse_db_manifest,
)
from backdrill.runtime.errors import IntegrityError
from backdrill.runtime.timeutil import MAX_CLOCK_SKEW
from backdrill.services.facts import DbFacts, RepoFacts
from backdrill.services.status import State, evaluate
from helpers.cli import Cli, Repo
from helpers.history import fake_db_backups, prune_config
from helpers.repo import delete_object, list_keys, read_object, write_object
from helpers.seed import db_manifest, write_drill, write_manifest, write_snapshot

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
FAR = timedelta(days=4 * 365 + 30)  # the -126,210,582 s seen in the field


def manifest_key(database: str, backup_id: str) -> str:
    return f"db/{database}/{backup_id}/{MANIFEST_NAME}"


def read_manifest(repo: Repo, database: str, backup_id: str) -> DbManifest:
    return DbManifest.model_validate_json(read_object(repo, manifest_key(database, backup_id)))


def forge(repo: Repo, key: str, manifest: DbManifest, **update: object) -> None:
    """Write ``manifest`` changed by ``update`` (unvalidated, as an attacker would) at ``key``."""
    doc = json.loads(manifest.to_json())
    doc.update(update)
    write_object(repo, key, json.dumps(doc, default=str).encode())


# the parser: one rule per forgery ---------------------------------------------------------


def good_manifest(backup_id: str = "20261126T110000Z-aaaaaa") -> DbManifest:
    return db_manifest(
        backup_id, "odoo", NOW - timedelta(hours=1), schema_version=1, raw_size=10, stored_size=10
    )


def as_bytes(manifest: DbManifest, **update: object) -> bytes:
    doc = json.loads(manifest.to_json())
    doc.update(update)
    return json.dumps(doc, default=str).encode()


GOOD_KEY = "db/odoo/20261126T110000Z-aaaaaa/manifest.json"


@pytest.mark.parametrize(
    ("update", "problem"),
    [
        ({"object": "../20261126T100000Z-bbbbbb/dump.pgdump.zst"}, "object"),
        ({"object": "/etc/passwd"}, "object"),
        ({"object": "sub/dump.pgdump.zst"}, "object"),
        ({"object": ".."}, "object"),
        ({"object": ""}, "object"),
        ({"id": "20261126T100000Z-bbbbbb"}, "whose manifest would be"),
        ({"id": "x/../20261126T100000Z-bbbbbb"}, "whose manifest would be"),
        ({"database": "accounting"}, "whose manifest would be"),
        ({"source": "supabase"}, "whose manifest would be"),
        ({"source": "../db"}, "source"),
        ({"source": ""}, "source"),
        ({"created_at": (NOW + timedelta(minutes=6)).isoformat()}, "in the future"),
        ({"created_at": (NOW + FAR).isoformat()}, "in the future"),
        ({"created_at": "2026-11-26T11:00:00"}, "no time zone"),
        ({"server_version": "x.1"}, "server_version"),  # its major picks the programs
        ({"server_version": "15" * 40}, "server_version"),
    ],
)
def test_a_manifest_not_valid_where_it_lies_is_an_integrity_error_naming_its_key(
    update: dict[str, object], problem: str
) -> None:
    parse_db_manifest(as_bytes(good_manifest()), GOOD_KEY, NOW)  # the control
    with pytest.raises(IntegrityError, match=problem) as caught:
        parse_db_manifest(as_bytes(good_manifest(), **update), GOOD_KEY, NOW)
    assert GOOD_KEY in str(caught.value)


def test_clock_skew_is_allowed_up_to_the_one_constant() -> None:
    within = (NOW + MAX_CLOCK_SKEW - timedelta(seconds=1)).isoformat()
    parse_db_manifest(as_bytes(good_manifest(), created_at=within), GOOD_KEY, NOW)


def test_directory_backup_objects_stay_in_their_directory() -> None:
    obj = StoredObject(name="dump-toc.dat.zst", raw_size=1, stored_size=1, sha256="0" * 64)
    good = good_manifest().model_copy(
        update={"format": DIRECTORY_FORMAT, "object": "dump-", "objects": [obj]}
    )
    parse_db_manifest(as_bytes(good), GOOD_KEY, NOW)
    for name, problem in [("../x/dump-toc.dat.zst", "objects"), ("manifest.json", "prefix")]:
        objects = [{**obj.model_dump(), "name": name}]
        with pytest.raises(IntegrityError, match=problem) as caught:
            parse_db_manifest(as_bytes(good, objects=objects), GOOD_KEY, NOW)
        assert GOOD_KEY in str(caught.value)


# the commands, on both backends -----------------------------------------------------------


def test_verify_of_a_manifest_pointing_at_another_backups_dump_exits_4_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo
) -> None:
    other, mine = fake_db_backups(repo, "odoo", timedelta(hours=2), timedelta(hours=1))
    theirs = read_manifest(repo, "odoo", other)
    key = manifest_key("odoo", mine)
    forge(
        repo,
        key,
        read_manifest(repo, "odoo", mine),
        object=f"../{other}/{DUMP_NAME}",
        stored_size=theirs.stored_size,
        raw_size=theirs.raw_size,
        sha256=theirs.sha256,
    )
    delete_object(repo, f"db/odoo/{mine}/{DUMP_NAME}")  # only the other's dump remains
    config = prune_config(tmp_path / "c.yaml", repo, days=30)
    cli = Cli(capsys, config)
    one = cli("verify", mine)
    assert one.code == 4, one.out + one.err
    assert key in one.err
    every = cli("verify", "--all")
    assert every.code == 4
    assert key in every.out + every.err
    shown = cli("show", mine)
    assert shown.code == 4
    assert key in shown.err


def test_prune_of_a_manifest_whose_id_is_another_backups_deletes_nothing_and_exits_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo
) -> None:
    ages = (timedelta(days=60), timedelta(days=1), timedelta(days=90))
    _, newest, forged = fake_db_backups(repo, "odoo", *ages)
    key = manifest_key("odoo", forged)
    # an expired backup that claims to be the newest one: today prune deletes the newest
    forge(repo, key, read_manifest(repo, "odoo", forged), id=newest)
    before = list_keys(repo)
    config = prune_config(tmp_path / "c.yaml", repo, days=30, min_keep=1, grace_hours=0)
    cli = Cli(capsys, config)
    result = cli("prune")
    assert result.code == 4, result.out + result.err
    assert key in result.err
    assert "refuses to delete anything" in result.err
    assert list_keys(repo) == before
    assert manifest_key("odoo", newest) in list_keys(repo)


def test_a_manifest_dated_in_the_future_is_flagged_by_verify_list_refused_by_drill_restore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo: Repo
) -> None:
    older, future = fake_db_backups(repo, "odoo", timedelta(hours=1), -FAR)
    key = manifest_key("odoo", future)
    config = prune_config(tmp_path / "c.yaml", repo, days=30)
    cli = Cli(capsys, config)
    restore = ["restore", "db", "--to", "postgresql://nobody@127.0.0.1:9/odoo", "--backup", future]
    for args in (
        ["verify", future],
        ["verify", "--all"],
        ["show", future],
        ["drill", "run", "--backup", future],
        restore,
    ):
        result = cli(*args)
        assert result.code == 4, (args, result.out, result.err)
        assert key in result.out + result.err, args
        assert "in the future" in result.out + result.err, args
    listed = cli("list", "--json")
    assert listed.code == 0, listed.err
    assert key in listed.err
    assert future not in listed.out
    assert older in listed.out


def test_status_never_reports_a_backup_or_snapshot_dated_in_the_future_as_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    now = datetime.now(UTC)
    write_manifest(repo, "odoo", now - timedelta(hours=1))
    future = write_manifest(repo, "odoo", now + FAR)
    write_snapshot(repo, "odoo", now - timedelta(hours=1))
    future_snapshot = write_snapshot(repo, "odoo", now + FAR)
    write_drill(repo, now - timedelta(days=1))
    config = tmp_path / "c.yaml"
    cli = Cli(capsys, config)
    config.write_text(
        f"storage: {{url: 'file://{repo}'}}\nfiles: {{source: /srv/filestore/odoo}}\n"
        "postgres: {databases: [odoo]}\n"
    )
    result = cli("status", "--json")
    doc = json.loads(result.out)
    assert doc["checks"], result.out  # a loop over nothing would pass
    for check in doc["checks"]:
        assert check["age_seconds"] is None or check["age_seconds"] >= 0, check
        assert future.id != check.get("last_id"), check
        assert future_snapshot != check.get("last_id"), check
    (flag,) = [c for c in doc["checks"] if c["name"] == "repository"]
    assert flag["state"] != "OK"
    assert manifest_key("odoo", future.id) in flag["detail"]
    assert doc["status"] != "OK"


# the pure functions, should such data reach them ------------------------------------------


def test_status_flags_an_age_below_the_clock_skew_as_critical() -> None:
    latest = good_manifest().model_copy(update={"created_at": NOW + FAR})
    facts = RepoFacts(read_at=NOW, databases={"odoo": DbFacts("odoo", latest, 1)})
    report = evaluate(facts, Policy(rpo_hours=24, drill_max_age_days=95), NOW)
    (db,) = [c for c in report.checks if c.kind == "db"]
    assert db.state == State.CRITICAL
    assert "in the future" in db.detail
    skewed = good_manifest().model_copy(update={"created_at": NOW + timedelta(seconds=30)})
    facts = RepoFacts(read_at=NOW, databases={"odoo": DbFacts("odoo", skewed, 1)})
    (db,) = [c for c in evaluate(facts, Policy(), NOW).checks if c.kind == "db"]
    assert db.state == State.OK
    assert db.age_seconds == 0


def test_a_negative_rpo_is_never_met() -> None:
    def rpo(created_at: datetime) -> tuple[float, bool]:
        result = evaluate_rpo(
            drill_start=NOW,
            backup_created_at=created_at,
            target_seconds=86400,
            history=[("a", created_at)],
            window_days=7,
        )
        return result.achieved_seconds, result.met

    achieved, met = rpo(NOW + FAR)
    assert achieved < 0
    assert met is False
    assert rpo(NOW + timedelta(seconds=30)) == (0.0, True)  # clock skew: fresh
    assert rpo(NOW - timedelta(hours=1)) == (3600.0, True)
