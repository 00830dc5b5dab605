"""``backup db`` against a real PostgreSQL and real storage (local and S3 over HTTP)."""

from __future__ import annotations

import hashlib
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
import zstandard

from backdrill.pg.connection import ConnParams
from backdrill.runtime.errors import Interrupted
from backdrill.sample.odoo import SampleInfo
from backdrill.storage.local import LocalStorage
from helpers.cli import Repo, SampleCli, run_cli, write_config
from helpers.repo import list_keys, manifests, open_uploads, read_object
from helpers.s3proxy import FaultProxy, Rule
from helpers.waiting import wait_until


def table_counts(params: ConnParams) -> dict[str, int]:
    with params.connect() as conn:
        tables = conn.execute(
            "SELECT schemaname, relname FROM pg_stat_user_tables ORDER BY 1, 2"
        ).fetchall()
        return {
            f"{s}.{t}": conn.execute(f'SELECT count(*) FROM "{s}"."{t}"').fetchone()[0]
            for s, t in tables
        }


def test_backup_commits_manifest_matching_stored_object_and_source(
    sample_cli: SampleCli,
    tmp_path: Path,
    pg: ConnParams,
    sample: SampleInfo,
    repo: Repo,
    pg_bin_dir: Path,
) -> None:
    cli = sample_cli(repo, database=sample.database)
    result = cli("backup", "db")
    assert result.code == 0, result.err
    assert "committed backup" in result.out

    (manifest,) = manifests(repo)
    key = f"db/{sample.database}/{manifest['id']}/dump.pgdump.zst"
    stored = read_object(repo, key)
    assert hashlib.sha256(stored).hexdigest() == manifest["sha256"]
    assert len(stored) == manifest["stored_size"]
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(stored)
    assert len(raw) == manifest["raw_size"]
    counts = {f"{t['schema']}.{t['table']}": t["rows"] for t in manifest["tables"]}
    assert counts == table_counts(pg.with_db(sample.database))
    for field in (
        "id",
        "kind",
        "database",
        "created_at",
        "finished_at",
        "raw_size",
        "stored_size",
        "sha256",
        "server_version",
        "pg_dump_version",
        "backdrill_version",
        "run_id",
        "schema_version",
    ):
        assert field in manifest

    dump = tmp_path / "dump.pgdump"
    dump.write_bytes(raw)
    listing = subprocess.run(
        [pg_bin_dir / "pg_restore", "--list", dump], capture_output=True, text=True, check=True
    ).stdout
    assert "TABLE DATA public mail_message" in listing


def test_list_and_show_render_table_and_stable_json(
    sample_cli: SampleCli,
    shared_sample: SampleInfo,
    local_repo: Repo,
) -> None:
    cli = sample_cli()
    assert cli("backup", "db").code == 0
    (manifest,) = manifests(local_repo)
    as_json = cli("list", "db", "--json")
    import json

    assert json.loads(as_json.out) == [manifest]
    table = cli("list")
    assert manifest["id"] in table.out and shared_sample.database in table.out
    shown = cli("show", manifest["id"], "--json")
    assert json.loads(shown.out) == manifest
    missing = cli("show", "20990101T000000Z-000000")
    assert missing.code == 4
    assert "no backup with id 20990101T000000Z-000000" in missing.err


def _inserter(params: ConnParams, stop: threading.Event, inserted: list[int]) -> None:
    with params.connect() as conn:
        while not stop.is_set():
            conn.execute(
                "INSERT INTO res_partner (name) SELECT 'concurrent ' || g "
                "FROM generate_series(1, 50) g"
            )
            conn.execute("INSERT INTO mail_message (message_type, body) VALUES ('comment', 'x')")
            inserted[0] += 51


def test_row_counts_match_the_dump_under_concurrent_inserts(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    sample: SampleInfo,
    local_repo: Repo,
    pg_bin_dir: Path,
) -> None:
    db = pg.with_db(sample.database)
    stop = threading.Event()
    inserted = [0]
    writer = threading.Thread(target=_inserter, args=(db, stop, inserted))
    writer.start()
    try:
        wait_until(lambda: inserted[0] >= 500, timeout=60, what="500 rows inserted")
        config = write_config(tmp_path / "c.yaml", pg, local_repo, databases=[sample.database])
        result = run_cli(capsys, "--config", str(config), "backup", "db")
        before_stop = inserted[0]
    finally:
        stop.set()
        writer.join()
    assert result.code == 0, result.err
    (manifest,) = manifests(local_repo)
    live = table_counts(db)
    expected = {f"{t['schema']}.{t['table']}": t["rows"] for t in manifest["tables"]}
    # the writer kept inserting after the snapshot: the live database moved on
    assert live["public.res_partner"] > expected["public.res_partner"]
    assert before_stop > 500

    restored = f"{sample.database}_restored"
    with pg.connect() as conn:
        conn.execute(f'CREATE DATABASE "{restored}"')
    try:
        raw = (
            zstandard.ZstdDecompressor()
            .decompressobj()
            .decompress(
                read_object(local_repo, f"db/{sample.database}/{manifest['id']}/dump.pgdump.zst")
            )
        )
        dump = tmp_path / "dump.pgdump"
        dump.write_bytes(raw)
        subprocess.run(
            [
                pg_bin_dir / "pg_restore",
                "--exit-on-error",
                "--no-owner",
                "--dbname",
                restored,
                dump,
            ],
            env=pg.with_db(restored).child_env(),
            check=True,
            capture_output=True,
        )
        assert table_counts(pg.with_db(restored)) == expected
    finally:
        with pg.connect() as conn:
            conn.execute(f'DROP DATABASE "{restored}" WITH (FORCE)')


def _kill_pg_dump_when_streaming(done: threading.Event, killed: list[int]) -> None:
    me = psutil.Process()
    while not done.is_set():
        for child in me.children(recursive=True):
            try:
                if child.name() == "pg_dump" and child.io_counters().write_chars > 1 << 20:
                    child.kill()
                    killed.append(child.pid)
                    return
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        time.sleep(0.005)


def test_pg_dump_killed_mid_stream_leaves_nothing_and_exits_5(
    sample_cli: SampleCli, large_sample: SampleInfo, repo: Repo
) -> None:
    cli = sample_cli(repo, database=large_sample.database, backup={"compression_level": 19})
    done = threading.Event()
    killed: list[int] = []
    killer = threading.Thread(target=_kill_pg_dump_when_streaming, args=(done, killed))
    killer.start()
    try:
        result = cli("backup", "db")
    finally:
        done.set()
        killer.join()
    assert killed, "pg_dump finished before the test could kill it"
    assert result.code == 5
    assert any("pg_dump was killed by signal 9" in ln for ln in result.errors), result.err
    assert "Traceback" not in result.err
    assert manifests(repo) == []
    assert open_uploads(repo) == []
    assert not [k for k in list_keys(repo) if k.endswith("dump.pgdump.zst")]


def test_storage_failing_mid_upload_on_s3_leaves_no_backup_and_no_open_upload(
    sample_cli: SampleCli, large_sample: SampleInfo, proxied_repo: Repo, fault_proxy: FaultProxy
) -> None:
    rule = fault_proxy.add(
        Rule(
            "error",
            method="PUT",
            contains="partNumber=2",
            status=403,
            code="AccessDenied",
            times=100,
        )
    )
    cli = sample_cli(proxied_repo, database=large_sample.database, backup={"compression_level": 1})
    result = cli("backup", "db")
    assert rule.hits >= 1, "the upload never reached a second part"
    assert result.code == 5
    (error,) = result.errors
    assert "cannot upload part 2 of" in error and "AccessDenied" in error
    fault_proxy.clear()
    assert manifests(proxied_repo) == []
    assert open_uploads(proxied_repo) == []
    assert list_keys(proxied_repo) == list_keys(proxied_repo, "status/")  # attempt records only
    assert not _pg_dump_children()


def _pg_dump_children() -> list[psutil.Process]:
    return [c for c in psutil.Process().children(recursive=True) if c.name() == "pg_dump"]


def test_storage_failing_mid_write_on_local_leaves_no_partial_file(
    sample_cli: SampleCli, large_sample: SampleInfo, local_repo: Repo
) -> None:
    cli = sample_cli(database=large_sample.database, backup={"compression_level": 1})
    # a real write failure: the file size limit makes write() fail with EFBIG
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, hard))
    try:
        result = cli("backup", "db")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert result.code == 5
    (error,) = result.errors
    assert "File too large" in error, result.err
    assert list_keys(local_repo) == list_keys(local_repo, "status/")  # attempt records only
    assert not _pg_dump_children()


@pytest.mark.parametrize("landed", [False, True], ids=["before-manifest", "after-manifest"])
def test_a_signal_around_the_manifest_write_leaves_no_backup_or_a_whole_one(
    sample_cli: SampleCli,
    shared_sample: SampleInfo,
    local_repo: Repo,
    monkeypatch: pytest.MonkeyPatch,
    landed: bool,
) -> None:
    """SIGTERM while the manifest is on its way: the dump is already committed. If the
    manifest never landed, the dump is removed; if it did, the backup stands whole."""
    real_put = LocalStorage.put_bytes

    def put_bytes(self: LocalStorage, key: str, data: bytes, *, if_absent: bool = False) -> None:
        if key.endswith("/manifest.json"):
            if landed:
                real_put(self, key, data, if_absent=if_absent)
            raise Interrupted(signal.SIGTERM)
        real_put(self, key, data, if_absent=if_absent)

    monkeypatch.setattr(LocalStorage, "put_bytes", put_bytes)
    cli = sample_cli()
    result = cli("backup", "db")
    assert result.code == 143, result.err
    if landed:
        (manifest,) = manifests(local_repo)
        key = f"db/{shared_sample.database}/{manifest['id']}/dump.pgdump.zst"
        assert hashlib.sha256(read_object(local_repo, key)).hexdigest() == manifest["sha256"]
    else:
        assert list_keys(local_repo, "db/") == []
    assert list_keys(local_repo, "locks/") == []
