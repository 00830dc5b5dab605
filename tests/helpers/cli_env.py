"""A throwaway environment for driving the CLI in-process with hostile input: a
filestore source, a local repository, a config whose PostgreSQL port is closed; and the
check every run must pass (a documented exit code, errors named, no internal error)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers.cli import Repo, Result, run_cli
from helpers.ports import refusing_port

#: README "Exit codes" (status: Nagios 0-3)
EXIT_CODES = {0, 1, 2, 3, 4, 5, 6}


@dataclass
class Env:
    root: Path
    repo: Repo
    source: Path
    config: Path

    @property
    def repo_dir(self) -> Path:
        return self.root / "repo"


def fresh_env(tmp_path: Path, config: dict[str, Any] | None = None) -> Env:
    """A new directory per example: a filestore source (a file, a dangling symlink, a
    symlink to a directory) and a local repository, with a closed PostgreSQL port."""
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    source = root / "src"
    (source / "d").mkdir(parents=True)
    (source / "d" / "file").write_bytes(b"attachment")
    os.symlink("nowhere", source / "dangling")
    os.symlink("d", source / "dirlink")
    repo = Repo(url=f"file://{root / 'repo'}")
    doc: dict[str, Any] = config if config is not None else {}
    doc.pop("notify", None)  # no webhook to the network
    doc["storage"] = {"url": repo.url}
    doc["files"] = {"source": str(source)}
    doc["postgres"] = {"host": "127.0.0.1", "port": refusing_port(), "connect_timeout": 1}
    path = root / "backdrill.yaml"
    path.write_text(yaml.safe_dump(doc))
    return Env(root, repo, source, path)


def check(result: Result, args: list[str]) -> None:
    where = f"{args}: {result.err[-2000:]}"
    assert "internal error" not in result.err, where
    assert "Traceback" not in result.err, where
    assert result.code in EXIT_CODES, where
    for line in result.err.splitlines():
        if line.startswith("{"):  # a JSON log record: one line, parseable
            json.loads(line)
    nagios = "status" in args  # 1 WARNING, 2 CRITICAL: states, not errors
    if (result.code not in (0, 2) and not nagios) or result.errors:
        records = [json.loads(line) for line in result.errors]
        assert records, where  # the error is named
        for record in records:  # one line; a config error: one line per problem
            if record.get("error") != "ConfigError":
                assert "\n" not in record["message"], where


def cli(capsys: pytest.CaptureFixture[str], env: Env, *args: str) -> Result:
    full = ["--config", str(env.config), *args]
    result = run_cli(capsys, *full)
    check(result, full)
    return result
