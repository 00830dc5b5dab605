"""The application object the root callback builds once per invocation: global options,
the console, and lazily the config, repository and run context."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console

from backdrill.cli.render import terminal_console
from backdrill.config.loading import find_config_file, load_config
from backdrill.config.model import Config
from backdrill.repository.attempts import Attempt
from backdrill.runtime.logs import LogFormat
from backdrill.runtime.progress import default_reporter
from backdrill.services.context import RunContext
from backdrill.storage import Storage, open_repository


@dataclass
class AppState:
    config_path: Path | None
    log_format: LogFormat
    run_id: str
    debug: bool
    metrics_file: Path | None = None
    out: Console = field(
        default_factory=lambda: terminal_console(soft_wrap=True, width=None if is_tty() else 200)
    )
    _config: Config | None = None
    _storage: Storage | None = None
    #: the command and scope whose attempt is recorded after the command (attempts.py)
    attempt_scope: tuple[str, str] | None = None
    #: outcomes the command recorded itself (one per database of ``backup db --all``)
    attempts: list[Attempt] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def begin_attempt(self, command: str, scope: str) -> None:
        self.attempt_scope = (command, scope)
        self.started = time.monotonic()

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(find_config_file(self.config_path))
        return self._config

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = open_repository(
                self.config.storage, tls_min=self.config.security.ssl_min
            )
        return self._storage

    def run_context(self) -> RunContext:
        return RunContext(
            config=self.config,
            storage=self.storage,
            run_id=self.run_id,
            reporter=default_reporter(),
        )

    def close(self) -> None:
        if self._storage is not None:
            self._storage.close()
            self._storage = None


def state(ctx: typer.Context) -> AppState:
    obj = ctx.find_root().obj
    if not isinstance(obj, AppState):  # pragma: no cover - the root callback always sets it
        raise RuntimeError("backdrill application state is missing")
    return obj


def is_tty() -> bool:
    return sys.stdout.isatty()
