"""Storage faults during ``backup files``, injected by the proxy in front of moto:
transient ones are retried and the snapshot commits, every content verified afterwards
(``verify files --read-data``, a byte-for-byte restore); an outage longer than the
retries fails with exit 5 and leaves no snapshot, no open upload and no lock."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers.cli import Cli, Repo, Result, run_cli_process
from helpers.faults import five_errors, outage_from_part_two, resets_mid_part
from helpers.files import files_config, make_tree
from helpers.filestore import assert_restores_source
from helpers.repo import list_keys, open_uploads
from helpers.retries import DEFAULT_RETRY, QUICK_RETRY, SCALED_RETRY, with_retry
from helpers.s3proxy import FaultProxy

pytestmark = pytest.mark.reliability
BIG = 12 * 1024 * 1024  # incompressible: three multipart parts of 5 MB


@pytest.fixture(scope="module")
def filestore(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("filestore")
    make_tree(root, count=40)
    (root / "big.bin").write_bytes(os.urandom(BIG))
    return root


def _config(tmp_path: Path, repo: Repo, filestore: Path, retry: dict[str, Any]) -> Path:
    return files_config(tmp_path / "c.yaml", with_retry(repo, retry), str(filestore))


@dataclass
class FilesUnderFaults:
    """The module's filestore backed up to the proxied repository, and what it committed
    checked."""

    tmp_path: Path
    capsys: pytest.CaptureFixture[str]
    filestore: Path
    repo: Repo

    def backup(self, retry: dict[str, Any]) -> tuple[Path, Result]:
        """``backup files`` with the ``retry`` policy: its configuration and result."""
        config = _config(self.tmp_path, self.repo, self.filestore, retry)
        return config, Cli(self.capsys, config)("backup", "files")

    def assert_committed_and_verified(self, config: Path) -> None:
        """One snapshot, nothing left open, its contents verified and restored."""
        cli = Cli(self.capsys, config)
        assert len(_snapshots(self.repo)) == 1
        assert open_uploads(self.repo) == []
        assert list_keys(self.repo, "locks/") == []
        verify = cli("verify", "--all", "--read-data")
        assert verify.code == 0, verify.err
        assert_restores_source(cli, self.filestore, self.tmp_path / "restored")


@pytest.fixture
def files_under_faults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], filestore: Path, proxied_repo: Repo
) -> FilesUnderFaults:
    return FilesUnderFaults(tmp_path, capsys, filestore, proxied_repo)


def _snapshots(repo: Repo) -> list[str]:
    return [k for k in list_keys(repo, "files/") if "/snapshots/" in k]


@pytest.mark.parametrize(
    ("status", "code", "method", "contains"),
    [
        (503, "ServiceUnavailable", "PUT", "files/objects/"),
        (503, "SlowDown", "POST", "uploads"),
        (503, "ServiceUnavailable", "PUT", "partNumber=2"),
        (500, "InternalError", "PUT", "/snapshots/"),
    ],
    ids=["503-object", "slowdown-create", "503-part", "500-snapshot"],
)
def test_files_backup_commits_after_five_consecutive_transient_errors(
    files_under_faults: FilesUnderFaults,
    fault_proxy: FaultProxy,
    status: int,
    code: str,
    method: str,
    contains: str,
) -> None:
    rule = five_errors(fault_proxy, status, code, method, contains)
    config, result = files_under_faults.backup(QUICK_RETRY)
    assert result.code == 0, result.err
    assert rule.hits == 5
    assert code in result.err
    files_under_faults.assert_committed_and_verified(config)


def test_files_backup_commits_after_connection_resets_mid_part(
    files_under_faults: FilesUnderFaults, fault_proxy: FaultProxy
) -> None:
    rule = resets_mid_part(fault_proxy)
    config, result = files_under_faults.backup(QUICK_RETRY)
    assert result.code == 0, result.err
    assert rule.hits == 2
    files_under_faults.assert_committed_and_verified(config)


def test_files_backup_rides_out_a_ten_second_outage_with_the_default_policy(
    files_under_faults: FilesUnderFaults, fault_proxy: FaultProxy
) -> None:
    rule = outage_from_part_two(fault_proxy, 10)
    started = time.monotonic()
    config, result = files_under_faults.backup(DEFAULT_RETRY)
    assert result.code == 0, result.err
    assert rule.hits >= 2
    assert time.monotonic() - started >= 10
    files_under_faults.assert_committed_and_verified(config)


def test_files_backup_fails_on_a_long_outage_with_exit_5_and_leaves_nothing_open(
    tmp_path: Path,
    filestore: Path,
    proxied_repo: Repo,
    fault_proxy: FaultProxy,
) -> None:
    """The 5-minute outage, scaled like tests/test_storage_faults.py: it outlasts the
    retries but not the clean-up budget: exit 5, no snapshot, the upload aborted and
    the lock released once the store is back, before the run exits."""
    outage = 12.0
    config = _config(tmp_path, proxied_repo, filestore, {**SCALED_RETRY, "cleanup_seconds": 20})
    outage_from_part_two(fault_proxy, outage)
    started = time.monotonic()
    result = run_cli_process("--config", str(config), "backup", "files")
    elapsed = time.monotonic() - started
    assert result.code == 5, result.err
    assert outage <= elapsed < outage + 20
    (error,) = result.errors
    assert "gave up after 4 attempts" in error, result.err
    assert "Traceback" not in result.err
    assert _snapshots(proxied_repo) == []
    assert open_uploads(proxied_repo) == []
    assert list_keys(proxied_repo, "locks/") == []
