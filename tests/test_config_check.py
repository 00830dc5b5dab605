"""``config check`` answers fast and completely: every problem in one run, each with its
key path and the fix, in seconds when a host does not answer."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from backdrill.pg.connection import ConnParams
from conftest import s3_repo
from helpers.cli import Cli, Repo, Result, write_config
from helpers.ports import refusing_port
from helpers.webhook import Receiver


def rows(result: Result) -> dict[str, tuple[str, str]]:
    """``{check: (status, detail)}`` of the table (one line a row: width 200 off a tty)."""
    out: dict[str, tuple[str, str]] = {}
    for line in result.out.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) >= 5 and cells[1] in ("ok", "FAIL"):
            out[cells[2]] = (cells[1], cells[3])
    return out


def check(capsys: pytest.CaptureFixture[str], config: Path) -> tuple[Result, float]:
    cli = Cli(capsys, config)
    start = time.monotonic()
    result = cli("config", "check")
    return result, time.monotonic() - start


def test_a_closed_port_is_named_in_seconds_with_every_other_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pg: ConnParams
) -> None:
    """A wrong endpoint looked like a hang (108 s of retries); now one FAIL row naming
    storage -> endpoint_url and host:port, with the filestore, the drill's binaries and
    the webhook checked in the same run."""
    port = hook_port = refusing_port()
    webhook = f"http://127.0.0.1:{hook_port}/hooks/s3cr3t-t0ken"
    config = write_config(
        tmp_path / "c.yaml",
        pg,
        s3_repo(f"http://127.0.0.1:{port}", "backups"),
        files={"source": str(tmp_path / "no-such-filestore")},
        notify={"webhook_url": webhook},
    )
    result, seconds = check(capsys, config)
    assert seconds < 20, seconds
    assert result.code == 1
    found = rows(result)
    status, detail = found["bucket reachable"]
    assert status == "FAIL"
    assert f"127.0.0.1:{port}" in detail and "storage -> endpoint_url" in detail
    assert "connection refused" in detail
    assert found["postgres reachable"][0] == "ok"
    status, detail = found["files source"]
    assert status == "FAIL" and "files -> source" in detail and "does not exist" in detail
    status, detail = found["webhook"]
    assert status == "FAIL" and "notify -> webhook_url" in detail
    assert "s3cr3t-t0ken" not in result.out + result.err
    assert f"{len([r for r in found.values() if r[0] == 'FAIL'])} check(s) failed" in result.out


def test_https_against_a_plain_http_endpoint_is_explained(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    s3_endpoint: str,
    bucket: str,
) -> None:
    config = write_config(
        tmp_path / "c.yaml", pg, s3_repo(s3_endpoint.replace("http://", "https://"), bucket)
    )
    result, seconds = check(capsys, config)
    assert seconds < 20, seconds
    assert result.code == 1
    status, detail = rows(result)["bucket reachable"]
    assert status == "FAIL"
    assert "the endpoint speaks plain HTTP: use http://" in detail
    assert "WRONG_VERSION_NUMBER" not in detail


def test_a_missing_bucket_is_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pg: ConnParams, s3_endpoint: str
) -> None:
    config = write_config(tmp_path / "c.yaml", pg, s3_repo(s3_endpoint, "no-such-bucket"))
    result, _seconds = check(capsys, config)
    assert result.code == 1
    status, detail = rows(result)["bucket reachable"]
    assert status == "FAIL"
    assert (
        f"bucket no-such-bucket does not exist at {s3_endpoint}: create it or fix storage -> url"
        in detail
    )


def test_the_drill_prerequisites_and_an_answering_webhook(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    local_repo: Repo,
    work_dir: Path,
) -> None:
    """The local sandbox's binaries found, the docker sandbox without an engine refused
    before the first drill; a webhook that answers (any HTTP status) passes, its URL
    never shown."""
    filestore = tmp_path / "filestore"
    filestore.mkdir()
    with Receiver() as receiver:
        good = write_config(
            tmp_path / "good.yaml",
            pg,
            local_repo,
            files={"source": str(filestore)},
            drill={"report_dir": str(tmp_path / "reports"), "work_dir": str(work_dir)},
            notify={"webhook_url": receiver.url},
        )
        ok, _seconds = check(capsys, good)
        assert ok.code == 0, ok.out + ok.err
        found = rows(ok)
        assert found["webhook"][0] == "ok"
        assert found["drill sandbox local"][0] == "ok"
        assert found["files source"][0] == "ok"
        assert receiver.path not in ok.out + ok.err
    from backdrill.sandbox.docker import docker_available

    if docker_available()[0]:
        return  # the docker sandbox can start here: nothing more to show
    bad = write_config(
        tmp_path / "bad.yaml",
        pg,
        local_repo,
        drill={"sandbox": "docker", "report_dir": str(tmp_path / "reports")},
    )
    result, _seconds = check(capsys, bad)
    assert result.code == 1
    status, detail = rows(result)["drill sandbox docker"]
    assert status == "FAIL" and ("docker extra" in detail or "no Docker engine" in detail)
