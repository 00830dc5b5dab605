"""``docker``: testcontainers' PostgresContainer with the ``postgres:<major>`` image."""

from __future__ import annotations

import secrets
from typing import Any

from backdrill.pg.connection import ConnParams, server_version
from backdrill.runtime.errors import SandboxError
from backdrill.runtime.redact import SECRETS
from backdrill.sandbox.base import MAINTENANCE_DB, Sandbox, SandboxInfo, free_throwaway_name


def docker_available() -> tuple[bool, str]:
    """Whether a Docker engine answers, and why not."""
    try:
        import docker  # type: ignore[import-untyped]
    except ImportError:
        return False, "the docker extra is not installed (pip install 'backdrill[docker]')"
    try:
        docker.from_env().ping()
    except Exception as exc:
        return False, f"no Docker engine answers: {type(exc).__name__}"
    return True, ""


class DockerSandbox(Sandbox):
    kind = "docker"

    def __init__(self, major: int, *, keep: bool = False) -> None:
        super().__init__(keep=keep)
        self.major = major
        self.container: Any = None

    def check_available(self) -> None:
        ok, why = docker_available()
        if not ok:
            raise SandboxError(f"cannot start a docker sandbox: {why}")

    def provision(self, database: str) -> SandboxInfo:
        ok, why = docker_available()
        if not ok:
            raise SandboxError(f"cannot start a docker sandbox: {why}")
        from testcontainers.postgres import PostgresContainer

        password = secrets.token_urlsafe(24)
        SECRETS.add(password)
        container = PostgresContainer(
            f"postgres:{self.major}", username="postgres", password=password, dbname="postgres"
        )
        container.with_command(
            "postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c wal_level=minimal -c max_wal_senders=0 -c max_wal_size=8GB "
            "-c maintenance_work_mem=512MB -c autovacuum=off"
        )
        try:
            container.start()
        except Exception as exc:
            raise SandboxError(f"cannot start postgres:{self.major}: {exc}") from None
        self.container = container
        params = ConnParams(
            host=container.get_container_host_ip(),
            port=int(container.get_exposed_port(5432)),
            user="postgres",
            password=password,
            sslmode="disable",
        )
        admin = params.with_db(MAINTENANCE_DB)
        with admin.connect() as conn:
            version = server_version(conn)
        name = free_throwaway_name(admin, database)
        short_id = container.get_wrapped_container().short_id
        self.info = SandboxInfo(
            kind=self.kind,
            server_version=version,
            address=f"{params.host}:{params.port} (container {short_id})",
            params=admin.with_db(name),
            admin=admin,
            segregated="a fresh container of the official image, removed after the drill",
            tuned_for_restore=True,
        )
        return self.info

    def teardown(self) -> None:
        if self.container is not None:
            try:
                self.container.stop()
            finally:
                self.container = None
