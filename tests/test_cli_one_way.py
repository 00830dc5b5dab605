"""One way to do each thing in the CLI: one registration style for every command
module, one ``--before`` parser (the future refused alike by ``restore db`` and
``restore files``), one lookup of "backup or snapshot" for ``show`` and ``verify``."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer

from backdrill.cli.options import parse_before
from backdrill.repository.layout import snapshot_key
from backdrill.runtime.errors import UsageError
from helpers.cli import Repo, run_cli
from helpers.files import files_config
from helpers.repo import write_object

CLI = Path(__file__).resolve().parents[1] / "src" / "backdrill" / "cli"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_every_command_module_registers_its_commands_through_register() -> None:
    modules = sorted(p.stem for p in CLI.glob("*_cmd.py"))
    assert "restore_files_cmd" in modules
    for name in modules:
        module = importlib.import_module(f"backdrill.cli.{name}")
        assert callable(getattr(module, "register", None)), name
        groups = [v for v in vars(module).values() if isinstance(v, typer.Typer)]
        assert groups == [], f"{name} builds its own Typer; app.py builds the tree"
    # restore files is attached by its own module, not from restore_cmd.py
    assert "restore_files" not in (CLI / "restore_cmd.py").read_text()


#: an option several commands take with one meaning, and the commands (None: every one)
SHARED_OPTIONS = {
    "--wait": None,
    "--before": None,
    "--backup": None,
    "--source": [("backup", "db"), ("restore", "db"), ("drill", "run")],  # a PostgreSQL source
    "--jobs": [("restore", "db"), ("drill", "run")],  # pg_restore's
}


def _option_helps(
    command: Any, path: tuple[str, ...] = ()
) -> dict[str, dict[tuple[str, ...], str]]:
    """Every option of every leaf command: {"--name": {command path: help text}}."""
    helps: dict[str, dict[tuple[str, ...], str]] = {}
    for name, sub in (getattr(command, "commands", None) or {}).items():
        for option, found in _option_helps(sub, (*path, name)).items():
            helps.setdefault(option, {}).update(found)
    for param in command.params if path and not hasattr(command, "commands") else []:
        for option in getattr(param, "opts", []):
            helps.setdefault(option, {})[path] = getattr(param, "help", None) or ""
    return helps


def test_an_option_shared_by_several_commands_has_one_help_text() -> None:
    from backdrill.cli.app import app

    helps = _option_helps(typer.main.get_command(app))
    for option, commands in SHARED_OPTIONS.items():
        texts = {p: h for p, h in helps[option].items() if commands is None or p in commands}
        assert len(texts) >= 2, (option, texts)
        assert len(set(texts.values())) == 1, (option, texts)


def test_before_is_parsed_once_into_utc() -> None:
    assert parse_before(None, now=NOW) is None
    assert parse_before("2026-11-26T03:00:00Z", now=NOW) == datetime(2026, 11, 26, 3, tzinfo=UTC)
    assert parse_before("2026-11-26T04:00:00+01:00", now=NOW) == datetime(
        2026, 11, 26, 3, tzinfo=UTC
    )
    assert parse_before("2026-11-26T03:00:00", now=NOW) == datetime(2026, 11, 26, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2026-11-26T12:00:01Z", "in the future"),
        ("yesterday", "is not a time"),
        ("2026-13-01T00:00:00Z", "is not a time"),
        # shifting to UTC leaves the calendar: an OverflowError before, an internal error
        ("0001-01-01T00:00:00+01:00", "is not a time"),
        ("9999-12-31T23:59:59-01:00", "is not a time"),
    ],
)
def test_a_bad_or_future_before_is_a_usage_error(value: str, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        parse_before(value, now=NOW)


@pytest.mark.parametrize("command", [("restore", "db"), ("restore", "files")])
@pytest.mark.parametrize("before", ["2999-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00"])
def test_restore_db_and_restore_files_refuse_a_future_or_bad_before_with_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    local_repo: Repo,
    command: tuple[str, str],
    before: str,
) -> None:
    config = files_config(tmp_path / "c.yaml", local_repo, str(tmp_path / "filestore"))
    target = "postgresql://localhost/copy" if command[1] == "db" else str(tmp_path / "out")
    result = run_cli(capsys, "--config", str(config), *command, "--to", target, "--before", before)
    assert result.code == 2, result.err
    assert "--before" in result.err


@pytest.mark.parametrize("command", ["show", "verify"])
def test_show_and_verify_name_an_unreadable_snapshot_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo, command: str
) -> None:
    snapshot_id = "20261126T040000Z-abcdef"
    write_object(local_repo, snapshot_key("filestore", snapshot_id), b"not zstd at all")
    config = files_config(tmp_path / "c.yaml", local_repo, str(tmp_path / "filestore"))
    result = run_cli(capsys, "--config", str(config), command, snapshot_id)
    assert result.code == 4, result.err
    assert snapshot_key("filestore", snapshot_id) in result.err  # the problem, named
    assert "no backup with id" not in result.err


@pytest.mark.parametrize("command", ["show", "verify"])
def test_show_and_verify_say_the_same_when_an_id_names_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_repo: Repo, command: str
) -> None:
    (tmp_path / "repo").mkdir()  # an empty repository
    config = files_config(tmp_path / "c.yaml", local_repo, str(tmp_path / "filestore"))
    result = run_cli(capsys, "--config", str(config), command, "20990101T000000Z-000000")
    assert result.code == 4
    assert (
        "no backup with id 20990101T000000Z-000000 "
        "(neither a database backup nor a files snapshot)" in result.err
    )
