"""``backdrill serve``: /health, /metrics, the listing cache; ``--metrics-file``."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backdrill.config.loading import load_config
from backdrill.services.serve import HealthApp, RepositoryCache, make_server, parse_listen
from backdrill.storage.local import LocalStorage
from helpers.cli import Cli, start_cli_process
from helpers.counting import CountingStorage
from helpers.seed import odoo_config, write_drill, write_manifest, write_snapshot

REPO = Path(__file__).resolve().parent.parent
H = timedelta(hours=1)


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class Mono:
    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - local test server
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def seeded(tmp_path: Path) -> dict[str, Any]:
    repo = tmp_path / "repo"
    now = datetime.now(UTC)
    write_manifest(repo, "odoo", now - 47 * H)
    last = write_manifest(repo, "odoo", now - 23 * H, seconds=90, stored_size=4242)
    write_snapshot(repo, "odoo", now - 2 * H)
    write_drill(repo, now - 24 * H, rpo_seconds=3600, rto_seconds=1234)
    return {"repo": repo, "last": last, "config": load_config(odoo_config(tmp_path, repo))}


@pytest.fixture
def serve(seeded: dict[str, Any]) -> Iterator[dict[str, Any]]:
    storage = CountingStorage(LocalStorage(seeded["repo"]))
    clock = Clock(datetime.now(UTC))
    mono = Mono()
    cache = RepositoryCache(storage, seeded["config"], cache_seconds=60, monotonic=mono)
    server = make_server(("127.0.0.1", 0), HealthApp(cache, clock=clock))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield {"base": base, "storage": storage, "clock": clock, "mono": mono, **seeded}
    server.shutdown()
    server.server_close()


def test_health_flips_from_200_to_503_when_the_last_backup_ages_past_the_rpo(
    serve: dict[str, Any],
) -> None:
    code, body = get(f"{serve['base']}/health")
    assert code == 200
    doc = json.loads(body)
    assert doc["status"] == "WARNING"  # 23 h old: past 90 % of the 24 h RPO, still 200
    serve["clock"].now += 90 * timedelta(minutes=1)  # now 24.5 h old
    code, body = get(f"{serve['base']}/health")
    assert code == 503
    doc = json.loads(body)
    assert doc["status"] == "CRITICAL"
    (db,) = [c for c in doc["checks"] if c["name"] == "database odoo"]
    assert db["state"] == "CRITICAL" and db["last_id"] == serve["last"].id
    assert serve["storage"].listings["db/"] == 1  # aging needs no new listing


def test_metrics_parse_with_the_prometheus_parser(serve: dict[str, Any]) -> None:
    code, body = get(f"{serve['base']}/metrics")
    assert code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    db = (("database", "odoo"), ("kind", "db"), ("source", "default"))
    last = serve["last"]
    assert samples[("backdrill_last_size_bytes", db)] == 4242
    assert samples[("backdrill_last_duration_seconds", db)] == 90
    assert samples[("backdrill_last_success_timestamp_seconds", db)] == pytest.approx(
        last.finished_at.timestamp()
    )
    assert samples[("backdrill_last_recovery_point_timestamp_seconds", db)] == pytest.approx(
        last.created_at.timestamp()
    )
    assert samples[("backdrill_backups", db)] == 2
    files = (("database", "odoo"), ("kind", "files"), ("source", ""))
    assert samples[("backdrill_backups", files)] == 1
    assert samples[("backdrill_last_drill_rto_seconds", ())] == 1234
    assert samples[("backdrill_last_drill_rpo_seconds", ())] == 3600
    assert samples[("backdrill_last_drill_passed", ())] == 1
    assert samples[("backdrill_rpo_target_seconds", ())] == 86400
    assert samples[("backdrill_status", ())] == 1
    assert samples[("backdrill_repository_up", ())] == 1


@pytest.mark.slow
def test_200_concurrent_requests_list_the_repository_once_per_cache_interval(
    serve: dict[str, Any],
) -> None:
    paths = ["/health", "/metrics"] * 100
    with ThreadPoolExecutor(max_workers=200) as pool:
        codes = [c for c, _b in pool.map(lambda p: get(serve["base"] + p), paths)]
    assert codes.count(200) == 200
    listings = serve["storage"].listings
    assert listings["db/"] == 1
    assert listings["evidence/"] == 1
    per_refresh = sum(listings.values())
    serve["mono"].value += 61  # the interval passes
    with ThreadPoolExecutor(max_workers=200) as pool:
        codes = [c for c, _b in pool.map(lambda p: get(serve["base"] + p), paths)]
    assert codes.count(200) == 200
    assert listings["db/"] == 2
    assert sum(listings.values()) == 2 * per_refresh


def test_unreadable_repository_is_503(tmp_path: Path) -> None:
    config = load_config(odoo_config(tmp_path, tmp_path / "missing"))
    cache = RepositoryCache(LocalStorage(tmp_path / "missing"), config, cache_seconds=60)
    server = make_server(("127.0.0.1", 0), HealthApp(cache))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        code, body = get(f"{base}/health")
        assert code == 503
        assert json.loads(body)["error"].startswith("repository directory")
        code, body = get(f"{base}/metrics")
        assert code == 200
        assert "backdrill_repository_up 0.0" in body.decode()
        assert get(f"{base}/nope")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("127.0.0.1:9187", ("127.0.0.1", 9187)), ("[::1]:9187", ("::1", 9187)), (":80", ("", 80))],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


def _serving_port(
    proc: subprocess.Popen[str], seen: list[str], timeout: float = 30
) -> tuple[int, threading.Thread]:
    """The port the server picked (``--listen 127.0.0.1:0``), read from its log line;
    every line of stderr is kept in ``seen`` (read by a thread: no fixed wait)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    pattern = re.compile(r"serving /health and /metrics on http://127\.0\.0\.1:(\d+)")
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            assert proc.poll() is None, "".join(seen)
            continue
        if match := pattern.search(line):
            return int(match.group(1)), reader
    raise AssertionError(f"no serving line within {timeout} s: {''.join(seen)}")


@pytest.mark.slow
def test_serve_command_answers_and_stops_on_sigterm(seeded: dict[str, Any], tmp_path: Path) -> None:
    proc = start_cli_process(
        tmp_path / "backdrill.yaml", "serve", "--listen", "127.0.0.1:0", stdout=subprocess.DEVNULL
    )
    seen: list[str] = []
    try:
        port, reader = _serving_port(proc, seen)
        code, body = get(f"http://127.0.0.1:{port}/health")
        assert code == 200
        assert json.loads(body)["status"] == "WARNING"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    reader.join(timeout=30)
    err = "".join(seen)
    assert proc.returncode == 143
    assert f"serving /health and /metrics on http://127.0.0.1:{port}" in err


def test_metrics_file_is_written_after_a_command(
    seeded: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "textfile" / "backdrill.prom"
    config = tmp_path / "backdrill.yaml"
    cli = Cli(capsys, config)
    result = cli("--metrics-file", str(target), "list")
    assert result.code == 0, result.err
    text = target.read_text()
    names = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert names["backdrill_last_run_exit_code"] == 0
    assert names["backdrill_status"] == 1
    assert names["backdrill_repository_up"] == 1
    assert [p.name for p in target.parent.iterdir()] == ["backdrill.prom"]  # no temp files


def test_metrics_file_after_a_failing_command_records_its_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "backdrill.prom"
    config = odoo_config(tmp_path, tmp_path / "missing")
    cli = Cli(capsys, config)
    result = cli("--metrics-file", str(target), "status")
    assert result.code == 2
    names = {
        s.name: s.value
        for f in text_string_to_metric_families(target.read_text())
        for s in f.samples
    }
    assert names["backdrill_last_run_exit_code"] == 2
    assert names["backdrill_repository_up"] == 0
