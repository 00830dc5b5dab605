"""The markers that `make test-fast` selects on: set from the fixtures a test uses, and a
test without them cannot start PostgreSQL or an S3 server by surprise."""

from __future__ import annotations

from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from backdrill.pg.cluster import LocalCluster
from helpers.cli import Repo


def test_an_unmarked_test_cannot_start_postgresql(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="starts PostgreSQL but is not marked pg"):
        LocalCluster(tmp_path, base_dir=tmp_path).start()


def test_an_unmarked_test_cannot_start_an_s3_server() -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    with pytest.raises(pytest.fail.Exception, match="starts an S3 server but is not marked s3"):
        server.start()


def test_a_test_using_a_postgresql_fixture_is_marked_pg(
    request: pytest.FixtureRequest, pg_bin_dir: Path
) -> None:
    assert request.node.get_closest_marker("pg") is not None
    assert request.node.get_closest_marker("s3") is None


def test_the_s3_parameter_of_repo_marks_s3_and_the_local_one_nothing(
    request: pytest.FixtureRequest, repo: Repo
) -> None:
    marked = request.node.get_closest_marker("s3") is not None
    assert marked == repo.is_s3
    assert request.node.get_closest_marker("pg") is None
