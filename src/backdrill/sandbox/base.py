"""The sandbox interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from backdrill.pg.connection import ConnParams


@dataclass(frozen=True)
class SandboxInfo:
    kind: str
    server_version: str
    address: str
    #: where to restore: a connection to the (empty) database created for the drill
    params: ConnParams
    segregated: str
    tuned_for_restore: bool
    newer_major: bool = False


class Sandbox(ABC):
    kind: str

    def __init__(self, *, keep: bool = False) -> None:
        self.keep = keep
        self.info: SandboxInfo | None = None

    @abstractmethod
    def provision(self, database: str) -> SandboxInfo:
        """Start (or reach) the server and create an empty ``database``-like database."""

    @abstractmethod
    def teardown(self) -> None:
        """Stop and delete everything; idempotent."""

    def connect_hint(self) -> str:
        """How to connect to a kept sandbox (no password: it is in the printed file)."""
        if self.info is None:
            return ""
        p = self.info.params
        return f"psql 'host={p.host} port={p.port} user={p.user} dbname={p.dbname}'"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.keep:
            self.teardown()
