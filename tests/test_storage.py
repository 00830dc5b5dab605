"""The storage contract, on both backends: local directory and S3 over HTTP (moto)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from backdrill.config.model import StorageConfig
from backdrill.runtime.errors import NotFound, StorageError
from backdrill.storage import AlreadyExists, Storage, open_storage
from helpers.cli import Repo
from helpers.repo import list_keys, open_uploads
from helpers.s3proxy import FaultProxy, Rule


def storage_for(repo: Repo) -> Storage:
    return open_storage(repo.url, StorageConfig.model_validate({"url": repo.url, **repo.storage}))


def test_writer_commits_on_success_and_leaves_nothing_on_failure(repo: Repo) -> None:
    store = storage_for(repo)
    payload = os.urandom(12 * 1024 * 1024)  # several 5 MiB parts on S3
    with store.open_writer("a/b/object") as writer:
        for i in range(0, len(payload), 1 << 20):
            writer.write(payload[i : i + (1 << 20)])
    assert store.get_bytes("a/b/object") == payload
    with pytest.raises(RuntimeError), store.open_writer("a/b/failed") as writer:
        writer.write(payload)
        raise RuntimeError("boom")
    assert list_keys(repo) == ["a/b/object"]
    assert open_uploads(repo) == []


def test_put_if_absent_is_exclusive(repo: Repo) -> None:
    store = storage_for(repo)
    store.put_bytes("locks/x", b"one", if_absent=True)
    with pytest.raises(AlreadyExists):
        store.put_bytes("locks/x", b"two", if_absent=True)
    assert store.get_bytes("locks/x") == b"one"


def test_listing_head_delete_and_not_found(repo: Repo) -> None:
    store = storage_for(repo)
    for key in ("db/x/1/manifest.json", "db/x/2/manifest.json", "files/objects/ab/abc"):
        store.put_bytes(key, key.encode())
    assert [i.key for i in store.list_objects("db/")] == [
        "db/x/1/manifest.json",
        "db/x/2/manifest.json",
    ]
    info = store.head("files/objects/ab/abc")
    assert info is not None and info.size == len(b"files/objects/ab/abc")
    store.delete("db/x/1/manifest.json")
    assert store.head("db/x/1/manifest.json") is None
    with pytest.raises(NotFound):
        store.get_bytes("db/x/1/manifest.json")


def test_s3_reader_fetches_large_objects_as_parallel_ranges_in_order(
    proxied_repo: Repo, fault_proxy: FaultProxy
) -> None:
    store = storage_for(proxied_repo)
    payload = os.urandom(23 * 1024 * 1024)
    with store.open_writer("big") as writer:
        writer.write(payload)
    fault_proxy.requests.clear()
    digest = hashlib.sha256()
    with store.open_reader("big") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(payload).hexdigest()
    gets = [path for method, path in fault_proxy.requests if method == "GET"]
    assert len(gets) == 6  # a first GET for two parts tells the size; then 5 MiB ranges


def test_s3_reader_detects_a_truncated_range(proxied_repo: Repo, fault_proxy: FaultProxy) -> None:
    store = storage_for(proxied_repo)
    with store.open_writer("big") as writer:
        writer.write(os.urandom(11 * 1024 * 1024))
    fault_proxy.add(Rule("truncate", method="GET", times=100))
    with pytest.raises(StorageError), store.open_reader("big") as stream:
        while stream.read(1 << 20):
            pass


def test_empty_and_small_objects_read_back(repo: Repo) -> None:
    store = storage_for(repo)
    store.put_bytes("empty", b"")
    store.put_bytes("small", b"abc")
    with store.open_reader("empty") as stream:
        assert stream.read() == b""
    assert store.get_bytes("small") == b"abc"


@pytest.mark.parametrize(
    "rule",
    [
        Rule("error", method="GET", contains="delimiter=", times=2, status=503),
        Rule(
            "error", method="GET", contains="delimiter=", times=2, status=500, code="InternalError"
        ),
        Rule("reset", method="GET", contains="delimiter=", times=2),
    ],
    ids=["503", "500", "reset"],
)
def test_s3_directory_listing_is_retried_like_every_request(
    proxied_repo: Repo, fault_proxy: FaultProxy, rule: Rule
) -> None:
    """list_dirs (filestore sources, scopes) goes through the one request wrapper: a
    transient fault on its ListObjectsV2 is retried, not the command's end."""
    store = storage_for(proxied_repo)
    for key in ("files/a/snapshots/1.json.zst", "files/b/snapshots/2.json.zst", "files/c"):
        store.put_bytes(key, b"x")
    fault_proxy.add(rule)
    assert store.list_dirs("files/") == ["a", "b"]
    assert rule.hits == 2


def test_s3_every_listing_page_is_retried(proxied_repo: Repo, fault_proxy: FaultProxy) -> None:
    """A fault on a later page of a listing retries that page, not the whole listing."""
    store = storage_for(proxied_repo)
    keys = [f"db/x/{i:04d}/manifest.json" for i in range(1005)]  # two pages of 1000
    for key in keys:
        store.put_bytes(key, b"{}")
    rule = fault_proxy.add(Rule("error", method="GET", contains="continuation-token=", times=2))
    assert [info.key for info in store.list_objects("db/")] == keys
    assert rule.hits == 2


def test_backends_declare_whether_their_objects_are_local_files(repo: Repo) -> None:
    """Services ask the backend (never its type) whether the repository is a directory."""
    store = storage_for(repo)
    if repo.url.startswith("file://"):
        assert store.local_root == Path(repo.url.removeprefix("file://"))
    else:
        assert store.local_root is None


def _write_big(store: Storage) -> None:
    with store.open_writer("big") as writer:
        writer.write(b"x" * (11 * 1024 * 1024))


#: each S3 request of the backend, and the one thing that selects it at the proxy
EVERY_REQUEST = {
    "PutObject": ("PUT", "/prod/obj", lambda s: s.put_bytes("obj", b"new")),
    "HeadObject": ("HEAD", "/prod/obj", lambda s: s.head("obj")),
    "GetObject": ("GET", "/prod/obj", lambda s: s.get_bytes("obj")),
    "DeleteObject": ("DELETE", "/prod/obj", lambda s: s.delete("obj")),
    "ListObjectsV2": ("GET", "list-type=2", lambda s: list(s.list_objects("db/"))),
    "ListObjectsV2 (dirs)": ("GET", "delimiter=", lambda s: s.list_dirs("db/")),
    "ListMultipartUploads": ("GET", "?uploads", lambda s: s.pending_uploads("db/")),
    "ListObjectVersions": ("GET", "?versions", lambda s: s.version_counts("db/")),
    "GetObjectLockConfiguration": ("GET", "object-lock", lambda s: s.capabilities()),
    "CreateMultipartUpload": ("POST", "/prod/big?uploads", _write_big),
    "UploadPart": ("PUT", "partNumber=2", _write_big),
    "CompleteMultipartUpload": ("POST", "/prod/big?uploadId", _write_big),
}


@pytest.mark.parametrize("request_name", list(EVERY_REQUEST))
def test_s3_every_request_goes_through_the_retrying_wrapper(
    proxied_repo: Repo, fault_proxy: FaultProxy, request_name: str
) -> None:
    """One 503 on any request of the backend is retried and the operation succeeds."""
    method, contains, operation = EVERY_REQUEST[request_name]
    store = storage_for(proxied_repo)
    store.put_bytes("obj", b"old")
    store.put_bytes("db/x/1/manifest.json", b"{}")
    rule = fault_proxy.add(Rule("error", method=method, contains=contains, times=1))
    operation(store)
    assert rule.hits == 1
