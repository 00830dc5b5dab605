"""Read a test repository directly (filesystem or boto3), not through backdrill."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3

from helpers.cli import Repo


def _client(repo: Repo) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=repo.storage["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id=repo.storage["access_key_id"],
        aws_secret_access_key=repo.storage["secret_access_key"],
    )


def _bucket_prefix(repo: Repo) -> tuple[str, str]:
    parsed = urlparse(repo.url)
    return parsed.netloc, parsed.path.strip("/")


def list_keys(repo: Repo, prefix: str = "") -> list[str]:
    if repo.is_s3:
        bucket, root = _bucket_prefix(repo)
        pages = (
            _client(repo)
            .get_paginator("list_objects_v2")
            .paginate(Bucket=bucket, Prefix=f"{root}/{prefix}")
        )
        return sorted(o["Key"][len(root) + 1 :] for p in pages for o in p.get("Contents", []))
    root_dir = Path(urlparse(repo.url).path)
    if not root_dir.exists():
        return []
    return sorted(
        str(p.relative_to(root_dir))
        for p in root_dir.rglob("*")
        if p.is_file() and str(p.relative_to(root_dir)).startswith(prefix)
    )


def read_object(repo: Repo, key: str) -> bytes:
    if repo.is_s3:
        bucket, root = _bucket_prefix(repo)
        return bytes(_client(repo).get_object(Bucket=bucket, Key=f"{root}/{key}")["Body"].read())
    return (Path(urlparse(repo.url).path) / key).read_bytes()


def write_object(repo: Repo, key: str, data: bytes) -> None:
    if repo.is_s3:
        bucket, root = _bucket_prefix(repo)
        _client(repo).put_object(Bucket=bucket, Key=f"{root}/{key}", Body=data)
    else:
        path = Path(urlparse(repo.url).path) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def delete_object(repo: Repo, key: str) -> None:
    if repo.is_s3:
        bucket, root = _bucket_prefix(repo)
        _client(repo).delete_object(Bucket=bucket, Key=f"{root}/{key}")
    else:
        (Path(urlparse(repo.url).path) / key).unlink()


def open_uploads(repo: Repo) -> list[str]:
    """Multipart uploads left open (S3) or partial files (local)."""
    if repo.is_s3:
        bucket, _root = _bucket_prefix(repo)
        resp = _client(repo).list_multipart_uploads(Bucket=bucket)
        return [u["Key"] for u in resp.get("Uploads", [])]
    return [k for k in list_keys(repo) if Path(k).name.startswith(".partial-")]


def manifests(repo: Repo) -> list[dict[str, Any]]:
    return [
        json.loads(read_object(repo, k))
        for k in list_keys(repo, "db/")
        if k.endswith("/manifest.json")
    ]
