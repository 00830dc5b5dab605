"""Choose a sandbox kind from the command line and config."""

from __future__ import annotations

from backdrill.config.model import Config
from backdrill.runtime.errors import ConfigError
from backdrill.sandbox.base import Sandbox


def open_sandbox(
    kind: str, major: int, config: Config, *, allow_newer: bool = False, keep: bool = False
) -> Sandbox:
    if kind == "local":
        from backdrill.sandbox.local import LocalSandbox

        return LocalSandbox(
            major,
            bin_dir=config.postgres.bin_dir,
            allow_newer=allow_newer,
            base_dir=config.drill.work_dir,
            keep=keep,
        )
    if kind == "docker":
        from backdrill.sandbox.docker import DockerSandbox

        return DockerSandbox(major, keep=keep)
    if kind == "server":
        from backdrill.sandbox.server import ServerSandbox

        if config.drill.server_dsn is None:
            raise ConfigError(
                "drill -> server_dsn (or server_dsn_file) is required for --sandbox server"
            )
        return ServerSandbox(config.drill.server_dsn.get_secret_value(), keep=keep)
    raise ConfigError(f"unknown sandbox kind {kind!r}: local, docker or server")
