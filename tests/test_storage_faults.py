"""Storage faults injected by the proxy between backdrill and a real S3 server (moto):
transient ones are retried and the backup commits with the right sha256; permanent
ones fail at once with one line and exit 5; broken downloads resume or fail loudly."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from backdrill.config.model import RetryConfig
from backdrill.pg.connection import ConnParams
from backdrill.sample.odoo import SampleInfo
from conftest import drop_database
from helpers.cli import Cli, Repo, Result, SampleCli, run_cli_process
from helpers.faults import five_errors, outage_from_part_two, resets_mid_part
from helpers.pgobjects import dsn
from helpers.repo import list_keys, manifests, open_uploads, read_object
from helpers.retries import DEFAULT_RETRY, QUICK_RETRY, SCALED_RETRY, with_retry
from helpers.s3proxy import FaultProxy, Rule

pytestmark = pytest.mark.reliability


def backup(
    sample_cli: SampleCli,
    repo: Repo,
    database: str,
    *,
    work: Path | None = None,
    subprocess: bool = False,
) -> tuple[Cli, Result]:
    """A level-1 backup of ``database`` on ``repo`` (in another process if
    ``subprocess``), drills working in ``work`` (else a folder beside the config)."""
    here = sample_cli.path.parent
    cli = sample_cli(
        repo,
        database=database,
        backup={"compression_level": 1},
        drill={"work_dir": str(work or here / "work"), "report_dir": str(here / "r")},
    )
    if subprocess:
        return cli, run_cli_process("--config", str(cli.config), "backup", "db")
    return cli, cli("backup", "db")


def assert_committed_and_verified(repo: Repo) -> dict[str, Any]:
    """One committed backup whose stored dump hashes to the manifest's sha256."""
    (manifest,) = manifests(repo)
    key = f"db/{manifest['database']}/{manifest['id']}/dump.pgdump.zst"
    data = read_object(repo, key)
    assert len(data) == manifest["stored_size"]
    assert hashlib.sha256(data).hexdigest() == manifest["sha256"]
    assert open_uploads(repo) == []
    assert list_keys(repo, "locks/") == []
    return manifest


def status_requests(proxy: FaultProxy) -> list[tuple[str, str]]:
    """The requests of the attempt records backdrill writes after a command."""
    return [(m, p) for m, p in proxy.requests if "/status/" in p]


def retry_warnings(result: Result) -> list[dict[str, Any]]:
    records = [json.loads(ln) for ln in result.err.splitlines() if ln.startswith("{")]
    return [r for r in records if "retrying in" in r.get("message", "")]


@pytest.mark.parametrize(
    ("status", "code", "method", "contains"),
    [
        (503, "ServiceUnavailable", "PUT", "partNumber=1"),
        (503, "SlowDown", "POST", "uploads"),
        (500, "InternalError", "PUT", "manifest.json"),
        (502, "BadGateway", "PUT", "partNumber=2"),
    ],
    ids=["503-part", "slowdown-create", "500-manifest", "502-part"],
)
def test_backup_commits_after_five_consecutive_transient_errors(
    sample_cli: SampleCli,
    large_sample: SampleInfo,
    proxied_repo: Repo,
    fault_proxy: FaultProxy,
    status: int,
    code: str,
    method: str,
    contains: str,
) -> None:
    repo = with_retry(proxied_repo, QUICK_RETRY)
    rule = five_errors(fault_proxy, status, code, method, contains)
    _cli, result = backup(sample_cli, repo, large_sample.database)
    assert result.code == 0, result.err
    assert rule.hits == 5
    attempts = [w["attempt"] for w in retry_warnings(result)]
    assert attempts == [1, 2, 3, 4, 5], result.err
    assert any(code in w["message"] for w in retry_warnings(result))
    assert_committed_and_verified(repo)


def test_backup_commits_after_connection_resets_mid_part(
    sample_cli: SampleCli, large_sample: SampleInfo, proxied_repo: Repo, fault_proxy: FaultProxy
) -> None:
    repo = with_retry(proxied_repo, QUICK_RETRY)
    rule = resets_mid_part(fault_proxy)
    _cli, result = backup(sample_cli, repo, large_sample.database)
    assert result.code == 0, result.err
    assert rule.hits == 2
    assert len(retry_warnings(result)) == 2
    assert_committed_and_verified(repo)


def test_backup_rides_out_a_ten_second_outage_with_the_default_policy(
    sample_cli: SampleCli, large_sample: SampleInfo, proxied_repo: Repo, fault_proxy: FaultProxy
) -> None:
    repo = with_retry(proxied_repo, DEFAULT_RETRY)
    rule = outage_from_part_two(fault_proxy, 10)
    started = time.monotonic()
    _cli, result = backup(sample_cli, repo, large_sample.database)
    assert result.code == 0, result.err
    assert rule.hits >= 2
    assert time.monotonic() - started >= 10
    assert_committed_and_verified(repo)


def test_default_retry_policy_rides_out_ten_seconds_and_gives_up_within_two_minutes() -> None:
    policy = RetryConfig().policy()
    # the least a policy waits (no jitter) before its 6th attempt must exceed 10 s
    least = sum(policy.base_seconds * 2**n for n in range(5))
    assert least > 10
    assert 10 < policy.worst_case_seconds() <= 90
    # the time spent in requests is bounded by the read/connect timeouts of one attempt
    assert policy.max_seconds <= 120


def test_backup_fails_on_a_long_outage_with_exit_5_and_cleans_up_once_the_store_is_back(
    sample_cli: SampleCli, large_sample: SampleInfo, proxied_repo: Repo, fault_proxy: FaultProxy
) -> None:
    """The 5-minute outage, scaled: it outlasts the retries (exit 5, one line, no
    manifest) but not the clean-up budget, so the run aborts its upload and releases
    its lock when the store is back, before it exits: nothing is left open."""
    outage = 12.0
    repo = with_retry(proxied_repo, {**SCALED_RETRY, "cleanup_seconds": 20})
    outage_from_part_two(fault_proxy, outage)
    started = time.monotonic()
    _cli, result = backup(sample_cli, repo, large_sample.database, subprocess=True)
    elapsed = time.monotonic() - started
    assert result.code == 5, result.err
    assert outage <= elapsed < outage + 20
    (line,) = result.errors
    assert "cannot upload part" in line and "gave up after 4 attempts" in line, line
    assert "Traceback" not in result.err
    assert manifests(repo) == []
    assert open_uploads(repo) == []
    assert list_keys(repo, "locks/") == []
    assert list_keys(repo, "db/") == []


def test_an_outage_outlasting_the_cleanup_budget_leaves_what_prune_removes(
    sample_cli: SampleCli, large_sample: SampleInfo, proxied_repo: Repo, fault_proxy: FaultProxy
) -> None:
    """The store stays down past the clean-up budget too: exit 5 without waiting longer;
    the log says the upload is left to prune, and once the store is back prune removes
    it and takes the dead run's lock over."""
    repo = with_retry(proxied_repo, {**SCALED_RETRY, "cleanup_seconds": 2})
    outage_from_part_two(fault_proxy, 300)
    started = time.monotonic()
    # a separate process, so that its lock is left by a dead holder, as after a real run
    cli, result = backup(sample_cli, repo, large_sample.database, subprocess=True)
    assert result.code == 5, result.err
    assert time.monotonic() - started < 60
    assert "`backdrill prune` removes it" in result.err
    fault_proxy.clear()  # the outage ends
    assert manifests(repo) == []
    prune = cli("prune")
    assert prune.code == 0, prune.err
    assert open_uploads(repo) == []
    assert manifests(repo) == []
    assert list_keys(repo, "locks/") == []


def test_backup_fails_when_parts_keep_failing_and_aborts_the_upload(
    sample_cli: SampleCli, large_sample: SampleInfo, proxied_repo: Repo, fault_proxy: FaultProxy
) -> None:
    """The store keeps answering 503 to uploads: retries exhausted, exit 5; the
    multipart upload is aborted and the lock released (the store answers those)."""
    fault_proxy.add(Rule("error", method="PUT", contains="partNumber", times=10_000))
    _cli, result = backup(sample_cli, proxied_repo, large_sample.database)
    assert result.code == 5, result.err
    (line,) = result.errors
    assert "ServiceUnavailable" in line and "gave up after 3 attempts" in line
    fault_proxy.clear()
    assert manifests(proxied_repo) == []
    assert open_uploads(proxied_repo) == []
    assert list_keys(proxied_repo, "locks/") == []


@pytest.mark.parametrize(
    ("status", "code"),
    [(403, "AccessDenied"), (403, "InvalidAccessKeyId"), (403, "SignatureDoesNotMatch")],
)
def test_permanent_storage_errors_are_not_retried_and_exit_5_in_one_line(
    sample_cli: SampleCli,
    shared_sample: SampleInfo,
    proxied_repo: Repo,
    fault_proxy: FaultProxy,
    status: int,
    code: str,
) -> None:
    rule = fault_proxy.add(Rule("error", method="PUT", times=100, status=status, code=code))
    _cli, result = backup(sample_cli, proxied_repo, shared_sample.database)
    assert result.code == 5
    # the attempt records (status/, written after the command) are requests of their own
    records = [r for r in status_requests(fault_proxy) if r[0] == "PUT"]
    assert rule.hits == 1 + len(records), "a permanent error was retried"
    assert retry_warnings(result) == []
    (line,) = result.errors
    assert code in line and "check the S3 credentials" in line
    assert "Traceback" not in result.err


def test_a_bucket_that_does_not_exist_exits_5_naming_it(
    sample_cli: SampleCli, shared_sample: SampleInfo, proxied_repo: Repo, fault_proxy: FaultProxy
) -> None:
    repo = replace(proxied_repo, url="s3://no-such-bucket-here/prod")
    _cli, result = backup(sample_cli, repo, shared_sample.database)
    assert result.code == 5
    (line,) = result.errors
    assert "NoSuchBucket" in line and "create the bucket no-such-bucket-here" in line
    assert len(fault_proxy.requests) - len(status_requests(fault_proxy)) == 1, (
        "NoSuchBucket was retried"
    )


def test_an_endpoint_whose_name_does_not_resolve_exits_5_without_retrying(
    sample_cli: SampleCli, shared_sample: SampleInfo, proxied_repo: Repo
) -> None:
    repo = with_retry(replace(proxied_repo), DEFAULT_RETRY)
    repo.storage["endpoint_url"] = "http://backdrill-no-such-host.invalid:9000"
    started = time.monotonic()
    _cli, result = backup(sample_cli, repo, shared_sample.database)
    assert result.code == 5
    assert time.monotonic() - started < 20
    assert retry_warnings(result) == []
    (line,) = result.errors
    assert "does not resolve" in line


def test_an_unreachable_endpoint_is_retried_then_exits_5(
    sample_cli: SampleCli, shared_sample: SampleInfo, proxied_repo: Repo, fault_proxy: FaultProxy
) -> None:
    fault_proxy.go_down(3600)
    _cli, result = backup(sample_cli, proxied_repo, shared_sample.database)
    assert result.code == 5
    assert [w["attempt"] for w in retry_warnings(result)] == [1, 2]
    (line,) = result.errors
    assert "gave up after 3 attempts" in line


DOWNLOADS = {
    "verify": ["verify", "--all", "--read-data"],
    "drill": ["drill", "run"],
    "restore": ["restore", "db", "--to", "{dsn}"],
}


@dataclass
class Download:
    """A committed backup on the proxied repository, and the name of a database it may
    be restored into (dropped after the test)."""

    cli: Cli
    pg: ConnParams
    target: str

    def __call__(self, command: str) -> Result:
        """One of :data:`DOWNLOADS`, each reading the dump back: its result."""
        to = dsn(self.pg, self.target)
        return self.cli(*[a.replace("{dsn}", to) for a in DOWNLOADS[command]])


@pytest.fixture
def download(
    sample_cli: SampleCli,
    pg: ConnParams,
    sample: SampleInfo,
    proxied_repo: Repo,
    work_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Download]:
    cli, result = backup(sample_cli, proxied_repo, sample.database, work=work_dir)
    assert result.code == 0, result.err
    monkeypatch.setenv("PGPASSWORD", pg.password or "")
    target = f"restored_{secrets.token_hex(3)}"
    yield Download(cli, pg, target)
    drop_database(pg, target)


def _pg_databases(pg: ConnParams) -> set[str]:
    with pg.connect() as conn:
        return {str(r[0]) for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


@pytest.mark.parametrize("command", sorted(DOWNLOADS))
@pytest.mark.parametrize("action", ["cut", "truncate"])
def test_a_download_broken_mid_body_resumes_with_a_ranged_get(
    download: Download, fault_proxy: FaultProxy, command: str, action: str
) -> None:
    rule = fault_proxy.add(Rule(action, method="GET", contains="dump.pgdump.zst", times=1))  # type: ignore[arg-type]
    result = download(command)
    assert result.code == 0, result.err
    assert rule.hits == 1
    ranged = [p for m, p in fault_proxy.requests if m == "GET" and "dump.pgdump.zst" in p]
    assert len(ranged) == 2, "the body was not resumed"
    assert "resuming" in result.err


@pytest.mark.parametrize("command", sorted(DOWNLOADS))
def test_a_byte_flipped_in_a_download_exits_4_and_leaves_nothing_restored(
    download: Download, fault_proxy: FaultProxy, work_dir: Path, command: str
) -> None:
    before = _pg_databases(download.pg)
    fault_proxy.add(Rule("flip", method="GET", contains="dump.pgdump.zst", times=1))
    result = download(command)
    assert result.code == 4, result.err
    assert "Traceback" not in result.err
    text = result.err + result.out
    assert "checksum mismatch" in text or "corrupt" in text or "sha256" in text, text
    assert _pg_databases(download.pg) == before, "a database was left half-restored"
    assert list(work_dir.iterdir()) == [], "a sandbox or download was left behind"
