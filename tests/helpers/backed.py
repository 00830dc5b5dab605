"""One committed backup to test against: the configuration that made it (drills
reporting to ``tmp_path / "reports"``, working in a given directory), its repository
and its manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backdrill.pg.connection import ConnParams
from helpers.cli import Cli, Repo, write_config
from helpers.repo import manifests


@dataclass
class Backed:
    cli: Cli
    repo: Repo
    manifest: dict[str, Any]
    reports: Path
    work: Path

    @property
    def config(self) -> Path:
        return self.cli.config

    @property
    def database(self) -> str:
        return str(self.manifest["database"])

    def key(self, name: str) -> str:
        """The repository key of ``name`` (``dump.pgdump.zst``, ``manifest.json``)."""
        return f"db/{self.database}/{self.manifest['id']}/{name}"

    def only_report(self) -> dict[str, object]:
        """The one drill report written so far, parsed."""
        (path,) = self.reports.glob("*/report.json")
        report: dict[str, object] = json.loads(path.read_text())
        return report


@dataclass
class BackUp:
    """Backs a database up once, successfully, with drills reporting to
    ``tmp_path / "reports"`` and working in ``work``: ``back_up(repo, database)``."""

    tmp_path: Path
    capsys: pytest.CaptureFixture[str]
    pg: ConnParams
    work: Path

    def __call__(
        self,
        repo: Repo,
        database: str,
        *,
        pg: ConnParams | None = None,
        work: Path | None = None,
        drill: dict[str, Any] | None = None,
        **sections: Any,
    ) -> Backed:
        """Configure ``database`` on ``repo`` (``drill`` adds to the drill section,
        ``pg`` and ``work`` replace the bound ones) and back it up."""
        work = work or self.work
        reports = self.tmp_path / "reports"
        config = write_config(
            self.tmp_path / "c.yaml",
            pg or self.pg,
            repo,
            databases=[database],
            drill={"report_dir": str(reports), "work_dir": str(work), **(drill or {})},
            **sections,
        )
        cli = Cli(self.capsys, config)
        result = cli("backup", "db")
        assert result.code == 0, result.err
        (manifest,) = manifests(repo)
        return Backed(cli, repo, manifest, reports, work)
