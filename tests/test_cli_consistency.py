"""One CLI that behaves the same everywhere: one exit code per condition, ``-h``,
choices validated, an example in every help, unique id prefixes, ``verify latest``,
friendly empty states, shell completion without click installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from backdrill.cli.app import app
from backdrill.pg.connection import ConnParams
from backdrill.sample.odoo import SampleInfo
from helpers.cli import Cli, Repo, SampleCli, run_cli, write_config
from helpers.repo import manifests


def leaf_commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        return [path]
    return [
        p for name, sub in sorted(subcommands.items()) for p in leaf_commands(sub, (*path, name))
    ]


COMMANDS = leaf_commands(typer.main.get_command(app))


# -- one exit code per condition -------------------------------------------------------


def test_missing_s3_credentials_and_a_missing_password_file_exit_alike(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    s3_endpoint: str,
    bucket: str,
) -> None:
    no_credentials = Repo(
        url=f"s3://{bucket}/prod", storage={"endpoint_url": s3_endpoint, "region": "us-east-1"}
    )
    config = write_config(tmp_path / "s3.yaml", pg, no_credentials)
    s3 = run_cli(capsys, "--config", str(config), "list")
    assert "no S3 credentials found" in s3.err
    local = Repo(url=f"file://{tmp_path / 'repo'}")
    config = write_config(tmp_path / "pw.yaml", pg, local)
    doc = yaml.safe_load(config.read_text())
    doc["postgres"]["password_file"] = str(tmp_path / "absent")
    config.write_text(yaml.safe_dump(doc))
    password = run_cli(capsys, "--config", str(config), "backup", "db")
    assert "password_file" in password.err
    assert s3.code == password.code == 3


def test_a_non_empty_target_is_refused_with_one_code_by_restore_db_and_restore_files(
    sample_cli: SampleCli,
    tmp_path: Path,
    pg: ConnParams,
    sample: SampleInfo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli = sample_cli(database=sample.database, files={"source": str(sample.filestore)})
    assert cli("backup", "db").code == 0
    assert cli("backup", "files").code == 0
    monkeypatch.setenv("PGPASSWORD", pg.password or "")
    target = f"host={pg.host} port={pg.port} user={pg.user} dbname={sample.database}"
    db = cli("restore", "db", "--to", target + " sslmode=disable")
    assert "refusing to replace it" in db.err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep").write_text("x")
    files = cli("restore", "files", "--to", str(busy))
    assert "is not empty" in files.err
    assert db.code == files.code == 1  # errors.Refused


# -- help, choices, completion --------------------------------------------------------


def test_h_is_help_on_the_root_and_on_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    root = run_cli(capsys, "-h")
    assert root.code == 0 and "Usage: backdrill" in root.out
    sub = run_cli(capsys, "backup", "db", "-h")
    assert sub.code == 0 and "--database" in sub.out


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_every_command_help_ends_with_an_example(
    capsys: pytest.CaptureFixture[str], path: tuple[str, ...]
) -> None:
    result = run_cli(capsys, *path, "--help")
    assert result.code == 0
    text = " ".join(result.out.split())
    assert "Example: backdrill " in text
    assert " ".join(path) in text.split("Example: ", 1)[1]


def test_an_unknown_sandbox_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "drill", "run", "--sandbox", "bogus")
    assert result.code == 2
    assert "--sandbox" in result.err and "local" in result.err


def test_an_unknown_log_format_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from backdrill.cli.app import main

    assert main(["--log-format", "xml", "status"]) == 2
    assert "--log-format" in capsys.readouterr().err


BLOCK_CLICK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "click" or name.startswith("click."):
            raise ImportError("click is not installed")
sys.meta_path.insert(0, Block())
sys.argv = ["backdrill", *sys.argv[1:]]
from backdrill.cli.app import main
code = main()
assert "click" not in sys.modules, "backdrill imported click"
sys.exit(code)
"""


@pytest.mark.slow
def test_show_completion_prints_a_script_without_click_installed(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_CLICK, "--show-completion", "bash"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "complete " in proc.stdout and "_BACKDRILL_COMPLETE" in proc.stdout


# -- ids: latest, unique prefixes ------------------------------------------------------


@pytest.fixture
def two_backups(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    sample: SampleInfo,
    local_repo: Repo,
) -> tuple[Path, list[str]]:
    config = write_config(tmp_path / "c.yaml", pg, local_repo, databases=[sample.database])
    cli = Cli(capsys, config)
    for _ in range(2):
        assert cli("backup", "db").code == 0
    ids = [m["id"] for m in sorted(manifests(local_repo), key=lambda m: (m["created_at"], m["id"]))]
    assert len(ids) == 2  # oldest first
    return config, ids


def test_verify_latest_verifies_the_newest_backup(
    capsys: pytest.CaptureFixture[str], two_backups: tuple[Path, list[str]]
) -> None:
    config, ids = two_backups
    cli = Cli(capsys, config)
    result = cli("verify", "latest")
    assert result.code == 0, result.err
    assert ids[-1] in result.out and ids[0] not in result.out


def test_a_unique_id_prefix_selects_for_show_and_verify(
    capsys: pytest.CaptureFixture[str], two_backups: tuple[Path, list[str]]
) -> None:
    config, ids = two_backups
    cli = Cli(capsys, config)
    prefix = ids[0][:-1]
    shown = cli("show", prefix, "--json")
    assert shown.code == 0, shown.err
    assert f'"id": "{ids[0]}"' in shown.out
    verified = cli("verify", prefix)
    assert verified.code == 0, verified.err
    assert ids[0] in verified.out


def test_an_ambiguous_prefix_is_a_usage_error_naming_the_candidates(
    capsys: pytest.CaptureFixture[str], two_backups: tuple[Path, list[str]]
) -> None:
    config, ids = two_backups
    cli = Cli(capsys, config)
    for command in (["show"], ["verify"], ["drill", "run", "--backup"]):
        result = cli(*command, ids[0][:4])
        assert result.code == 2, (command, result.err)
        assert ids[0] in result.err and ids[1] in result.err and "ambiguous" in result.err


# -- empty states ----------------------------------------------------------------------


def test_empty_listings_say_what_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pg: ConnParams, local_repo: Repo
) -> None:
    (tmp_path / "repo").mkdir()  # an empty repository (local_repo's directory)
    config = write_config(tmp_path / "c.yaml", pg, local_repo)
    cfg = ("--config", str(config))
    assert "no backups yet" in run_cli(capsys, *cfg, "list").out
    assert "run `backdrill backup db`" in run_cli(capsys, *cfg, "list").out
    assert "run `backdrill backup files`" in run_cli(capsys, *cfg, "list", "files").out
    assert (
        "no drills yet: run `backdrill drill run`" in run_cli(capsys, *cfg, "drill", "history").out
    )


def test_a_drill_without_a_backup_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pg: ConnParams, local_repo: Repo
) -> None:
    (tmp_path / "repo").mkdir()
    config = write_config(tmp_path / "c.yaml", pg, local_repo)
    cli = Cli(capsys, config)
    result = cli("drill", "run")
    assert result.code == 4
    assert "no committed backup" in result.err and "`backdrill backup db`" in result.err
