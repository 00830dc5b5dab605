"""Fixtures: a real throwaway PostgreSQL, a real S3 endpoint over HTTP (moto server),
a clean environment, and helpers to run the real CLI."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from hypothesis import settings
from moto.server import ThreadedMotoServer

from backdrill.pg import binaries
from backdrill.pg.cluster import LocalCluster
from backdrill.pg.connection import ConnParams
from backdrill.runtime.redact import SECRETS
from backdrill.sample.odoo import SampleInfo, create_sample
from helpers.age import age_identity
from helpers.backed import BackUp
from helpers.cli import Cli, Repo, SampleCli
from helpers.filestore import FilestoreOn
from helpers.s3proxy import FaultProxy

S3_KEY_ID = "testing-key-id"
S3_SECRET = "testing-secret-Zq8vX"
FAST_RETRY = {"attempts": 3, "max_seconds": 3, "base_seconds": 0.05, "max_wait_seconds": 0.5}

# No wall-clock deadline per hypothesis example (the default is 200 ms): on a machine
# shared by parallel test workers (make test runs pytest-xdist) and other jobs, an
# example descheduled for 200 ms would fail on the load, not on the code.
settings.register_profile("backdrill", deadline=None)
settings.load_profile("backdrill")

# A test using one of these fixtures (directly or through another fixture) is marked
# `pg` or `s3` at collection, so `make test-fast` (-m "not pg and not s3 and not slow")
# leaves it out without anyone remembering to mark it.
PG_FIXTURES = frozenset(
    {"pg_bin_dir", "pg_cluster", "pg", "sample", "shared_sample", "large_sample"}
)
S3_FIXTURES = frozenset({"moto_server", "s3_endpoint", "bucket", "fault_proxy", "proxied_repo"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & PG_FIXTURES:
            item.add_marker(pytest.mark.pg)
        callspec = getattr(item, "callspec", None)
        s3_param = callspec is not None and callspec.params.get("repo") == "s3"
        if names & S3_FIXTURES or s3_param:
            item.add_marker(pytest.mark.s3)


@pytest.fixture(autouse=True)
def _pure_tests_start_no_servers(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test marked neither `pg` nor `s3` that starts PostgreSQL or an S3 server fails
    loudly: the fast run (`make test-fast`) must never run slow tests by surprise."""
    node = request.node
    if node.get_closest_marker("pg") is None:

        def no_cluster(self: LocalCluster) -> LocalCluster:
            pytest.fail(f"{node.nodeid} starts PostgreSQL but is not marked pg")

        monkeypatch.setattr(LocalCluster, "start", no_cluster)
    if node.get_closest_marker("s3") is None:

        def no_moto(self: ThreadedMotoServer) -> None:
            pytest.fail(f"{node.nodeid} starts an S3 server but is not marked s3")

        monkeypatch.setattr(ThreadedMotoServer, "start", no_moto)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No BACKDRILL_*, PG* or AWS_* from the outside world; state under tmp_path."""
    for name in list(os.environ):
        if name.startswith(("BACKDRILL_", "PG", "AWS_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def pg_bin_dir() -> Path:
    programs = binaries.find_all("initdb")
    if not programs:
        pytest.fail("PostgreSQL server binaries (initdb) not found: install postgresql-15")
    return sorted(programs, key=lambda p: p.major)[-1].bin_dir


@pytest.fixture(scope="session")
def pg_cluster(pg_bin_dir: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(
        pg_bin_dir, tuning={"fsync": "off", "synchronous_commit": "off", "max_connections": "50"}
    )
    with cluster:
        yield cluster


@pytest.fixture
def pg(pg_cluster: LocalCluster) -> ConnParams:
    SECRETS.add(pg_cluster.password)
    return pg_cluster.params


@pytest.fixture
def sample(pg: ConnParams, tmp_path: Path) -> Iterator[SampleInfo]:
    """A fresh Odoo-shaped database (a few MB) and its filestore, dropped afterwards."""
    name = f"odoo_{secrets.token_hex(4)}"
    info = create_sample(pg, name, tmp_path / "filestore", scale=1)
    yield info
    drop_database(pg, name)


@pytest.fixture(scope="session")
def shared_sample(
    pg_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SampleInfo]:
    """The same Odoo-shaped database as ``sample``, built once for the run, for tests
    that only READ it (back it up, dump it, drill a copy in a sandbox): a test that
    writes to it, its roles or its filestore takes ``sample``."""
    SECRETS.add(pg_cluster.password)
    name = f"odoo_{secrets.token_hex(4)}"
    info = create_sample(pg_cluster.params, name, tmp_path_factory.mktemp("filestore"), scale=1)
    yield info
    drop_database(pg_cluster.params, name)


@pytest.fixture(scope="session")
def large_sample(
    pg_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SampleInfo]:
    """One larger Odoo-shaped database for the whole run, READ ONLY (tests back it up,
    interrupt or fault its dump, never write to it): about 7 MB of compressed dump at
    level 1, two multipart parts of 5 MB, a few seconds of work to interrupt mid-stream."""
    SECRETS.add(pg_cluster.password)
    name = f"odoo_large_{secrets.token_hex(3)}"
    info = create_sample(pg_cluster.params, name, tmp_path_factory.mktemp("fs"), scale=20)
    yield info
    drop_database(pg_cluster.params, name)


def drop_database(pg: ConnParams, name: str) -> None:
    with pg.connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def work_dir() -> Iterator[Path]:
    """A work directory for sandboxes and downloads, private to the test (under /tmp:
    the sandbox server runs as an unprivileged user, who cannot enter tmp_path)."""
    path = Path(tempfile.mkdtemp(prefix="backdrill-test-work-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_endpoint(moto_server: str) -> str:
    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    return moto_server


def s3_client(endpoint: str) -> object:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
    )


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"backups-{secrets.token_hex(3)}"
    s3_client(s3_endpoint).create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name


def s3_repo(endpoint: str, bucket: str, prefix: str = "prod", **storage: Any) -> Repo:
    """The one builder of an S3 repository on the test endpoint (moto or a proxy in front
    of it), with the test credentials; ``storage`` adds or overrides settings."""
    return Repo(
        url=f"s3://{bucket}/{prefix}",
        storage={
            "endpoint_url": endpoint,
            "region": "us-east-1",
            "access_key_id": S3_KEY_ID,
            "secret_access_key": S3_SECRET,
            **storage,
        },
    )


def object_lock_bucket(endpoint: str, name: str | None = None) -> str:
    """A new bucket with S3 Object Lock enabled (it can only be enabled at creation)."""
    name = name or f"locked-{secrets.token_hex(3)}"
    client: Any = s3_client(endpoint)
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


@pytest.fixture(params=["local", "s3"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Repo:
    """A repository on each backend: a local directory, and a bucket on moto over HTTP."""
    if request.param == "local":
        return Repo(url=f"file://{tmp_path / 'repo'}", storage={})
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket_name = request.getfixturevalue("bucket")
    return s3_repo(endpoint, bucket_name, part_size_mb=5)


@pytest.fixture
def local_repo(tmp_path: Path) -> Repo:
    return Repo(url=f"file://{tmp_path / 'repo'}", storage={})


@pytest.fixture
def fault_proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(s3_endpoint).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def proxied_repo(fault_proxy: FaultProxy, bucket: str) -> Repo:
    """An S3 repository reached through the fault-injecting proxy."""
    # quick retries by default; the fault tests set the real defaults
    return s3_repo(fault_proxy.url, bucket, part_size_mb=5, retry=FAST_RETRY)


@pytest.fixture
def sample_cli(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    local_repo: Repo,
) -> SampleCli:
    """Binds the CLI to a configuration (``c.yaml`` in ``tmp_path``) of one database,
    the shared sample unless the call names another, on ``local_repo`` unless the call
    names another repository; ``shared_sample`` and ``work_dir`` are set up only when
    a call needs them."""
    return SampleCli(
        capsys,
        pg,
        tmp_path / "c.yaml",
        local_repo,
        tmp_path / "reports",
        lambda: str(request.getfixturevalue("shared_sample").database),
        lambda: Path(request.getfixturevalue("work_dir")),
    )


@pytest.fixture
def drill_cli(sample_cli: SampleCli) -> Cli:
    """The CLI on the shared sample database and ``local_repo``, drills reporting to
    ``tmp_path / "reports"`` and working in ``work_dir``."""
    return sample_cli.drilling()


@pytest.fixture
def back_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pg: ConnParams, work_dir: Path
) -> BackUp:
    """Backs a database up once (``back_up(repo, database)``), drills configured to
    report to ``tmp_path / "reports"`` and to work in ``work_dir``."""
    return BackUp(tmp_path, capsys, pg, work_dir)


@pytest.fixture
def filestore_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> FilestoreOn:
    """Builds ``tmp_path / "filestore"`` and configures it on a repository, the CLI bound
    to it: ``tree = filestore_on(local_repo, count=3)``, ``tree.cli("backup", "files")``."""
    return FilestoreOn(tmp_path, capsys)


@pytest.fixture
def age_keys(tmp_path: Path) -> tuple[str, Path]:
    """An age recipient (public key) and the file holding its identity."""
    return age_identity(tmp_path)
