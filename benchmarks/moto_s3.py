"""A real S3 server for the benchmarks and the wheel smoke test: moto on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from moto.server import ThreadedMotoServer


@contextmanager
def moto_bucket(bucket: str, key_id: str, secret: str) -> Iterator[str]:
    """Start moto on a free port of 127.0.0.1, create ``bucket`` there with the
    credentials given (moto accepts any), and yield the endpoint URL; stop it after."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        ).create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()
