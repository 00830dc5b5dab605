"""A filestore to back up, configured on a repository, with the CLI bound to it:
``tree = filestore_on(local_repo, count=3)`` then ``tree.cli("backup", "files")``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers.cli import Cli, Repo, Result
from helpers.files import files_config, make_tree, tree_state


@dataclass
class Filestore:
    source: Path
    config: Path
    cli: Cli

    def backed_up(self) -> Filestore:
        """Itself, after one successful ``backup files``."""
        result = self.cli("backup", "files")
        assert result.code == 0, result.err
        return self


@dataclass
class FilestoreOn:
    """Builds ``tmp_path / "filestore"`` (``make_tree`` of ``count`` files, or just the
    ``files`` given, path -> content) and configures it in ``tmp_path / "c.yaml"`` on a
    repository; ``sections`` are added to the configuration (``retention``...)."""

    tmp_path: Path
    capsys: pytest.CaptureFixture[str]

    def __call__(
        self,
        repo: Repo,
        count: int | None = None,
        *,
        files: dict[str, bytes] | None = None,
        **sections: Any,
    ) -> Filestore:
        source = self.tmp_path / "filestore"
        if count is not None:
            make_tree(source, count=count)
        source.mkdir(exist_ok=True)
        for name, data in (files or {}).items():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes(data)
        config = files_config(self.tmp_path / "c.yaml", repo, str(source))
        if sections:
            doc = yaml.safe_load(config.read_text())
            config.write_text(yaml.safe_dump({**doc, **sections}))
        return Filestore(source, config, Cli(self.capsys, config))


def assert_restores_source(cli: Cli, source: Path, target: Path) -> Result:
    """``restore files --to target`` succeeds (its result) and gives ``source`` back:
    bytes, modes, mtimes and symlinks."""
    restored = cli("restore", "files", "--to", str(target))
    assert restored.code == 0, restored.err
    assert tree_state(target) == tree_state(source)
    return restored
