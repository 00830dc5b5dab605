"""A local repository holds whole databases (password hashes included): it is private
to the user running backdrill, whatever the umask; the systemd units say so too."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from backdrill.pg.connection import ConnParams
from backdrill.sample.odoo import SampleInfo
from helpers.cli import Cli, Repo, SampleCli, write_config

UNITS = Path(__file__).resolve().parents[1] / "ops" / "systemd"


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask of a shell (022): files 0644 and directories 0755 by default."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_fresh_local_repository_is_0700_with_files_0600(
    sample_cli: SampleCli, sample: SampleInfo, local_repo: Repo, open_umask: None
) -> None:
    root = Path(urlparse(local_repo.url).path)
    assert not root.exists()
    cli = sample_cli(database=sample.database, files={"source": str(sample.filestore)})
    for command in (("backup", "db"), ("backup", "files")):
        result = cli(*command)
        assert result.code == 0, result.err

    modes = {root: stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        modes[path] = stat.S_IMODE(path.lstat().st_mode)
    files = [p for p in modes if p.is_file()]
    assert any(p.name == "manifest.json" for p in files)
    assert any(p.name.endswith(".json.zst") for p in files)
    assert any("packs" in p.parts for p in files)  # the filestore's contents
    wrong = {
        str(p.relative_to(root)): oct(mode)
        for p, mode in modes.items()
        if mode != (0o600 if p.is_file() else 0o700)
    }
    assert wrong == {}


def test_a_files_backup_into_a_fresh_local_repository_creates_its_root_0700(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    sample: SampleInfo,
    open_umask: None,
) -> None:
    """``backup files`` first, before any ``backup db``: the directory it creates for
    the repository, and those above it, are private too."""
    root = tmp_path / "new" / "repo"
    repo = Repo(url=f"file://{root}", storage={})
    config = write_config(
        tmp_path / "c.yaml",
        pg,
        repo,
        databases=[sample.database],
        files={"source": str(sample.filestore)},
    )
    result = Cli(capsys, config)("backup", "files")
    assert result.code == 0, result.err
    assert oct(stat.S_IMODE(root.stat().st_mode)) == oct(0o700)
    assert oct(stat.S_IMODE(root.parent.stat().st_mode)) == oct(0o700)


def test_every_systemd_service_sets_umask_0077() -> None:
    services = sorted(UNITS.glob("*.service"))
    assert services
    for unit in services:
        lines = [ln.strip() for ln in unit.read_text().splitlines()]
        service = lines[lines.index("[Service]") :]
        assert "UMask=0077" in service, unit.name
