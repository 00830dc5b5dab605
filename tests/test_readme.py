"""The README cannot drift: its YAML loads through the real config loader, its command
reference names every command and option the CLI has (walked from the typer app, so
options added later are checked too), its cron lines are cron/backdrill.cron's."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer

from backdrill.cli.app import app
from backdrill.config.loading import load_config

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^ *```{language}\n(.*?)^ *```$", text, re.M | re.S)


def section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README has no section {title!r}"
    return match.group(1)


# -- configuration samples -----------------------------------------------------------


def test_readme_has_yaml_samples() -> None:
    assert fenced_blocks(README, "yaml"), "the README's config sample is a ```yaml block"


@pytest.mark.parametrize("index", range(len(fenced_blocks(README, "yaml"))))
def test_readme_yaml_block_loads_through_the_config_loader(tmp_path: Path, index: int) -> None:
    """Each sample, secrets aside (their files are written here), is a valid config."""
    text = fenced_blocks(README, "yaml")[index]

    def secret_file(match: re.Match[str]) -> str:
        path = tmp_path / "secrets" / match.group(1)
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"secret-{match.group(1)}\n")
        return str(path)

    text = re.sub(r"/run/secrets/([A-Za-z0-9_.-]+)", secret_file, text)
    (tmp_path / "ops").symlink_to(REPO / "ops")  # `ssot:` is relative to the config
    path = tmp_path / "backdrill.yaml"
    path.write_text(text)
    config = load_config(path)
    if "notify:" in text:  # YAML 1.1 would read `on` as the boolean true
        assert config.notify.on == ["failure"]


# -- the command reference -----------------------------------------------------------


def leaf_commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        return [(path, command)]
    found: list[tuple[tuple[str, ...], Any]] = []
    for name, sub in sorted(subcommands.items()):
        if not getattr(sub, "hidden", False):
            found += leaf_commands(sub, (*path, name))
    return found


def long_options(command: Any) -> list[str]:
    names: list[str] = []
    for param in command.params:
        if param.param_type_name != "option" or getattr(param, "hidden", False):
            continue
        names += [o for o in [*param.opts, *param.secondary_opts] if o.startswith("--")]
    return names


ROOT = typer.main.get_command(app)
COMMANDS = leaf_commands(ROOT)


def reference_rows() -> dict[str, str]:
    """``backdrill backup db`` -> its table row in README "Commands"."""
    rows: dict[str, str] = {}
    for line in section(README, "Commands").splitlines():
        match = re.match(r"^\| `(backdrill(?: [a-z][a-z-]*)+)", line)
        if match:
            assert match.group(1) not in rows, f"two rows for {match.group(1)}"
            rows[match.group(1)] = line
    return rows


def test_the_reference_walk_sees_the_cli() -> None:
    """The walk itself can fail: it must find the commands and options known today."""
    paths = {" ".join(p) for p, _ in COMMANDS}
    assert {"backup db", "drill run", "restore files", "config check"} <= paths
    backup_db = dict(COMMANDS)[("backup", "db")]
    assert "--jobs" in long_options(backup_db)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_readme_reference_has_one_row_per_command_with_every_option(
    path: tuple[str, ...], command: Any
) -> None:
    name = " ".join(("backdrill", *path))
    rows = reference_rows()
    assert name in rows, f"README Commands has no row for `{name}`"
    synopsis = re.split(r"(?<!\\)\|", rows[name])[1]  # `\|` inside a cell is no border
    missing = [opt for opt in long_options(command) if not re.search(rf"{opt}\b", synopsis)]
    assert not missing, f"`{name}`: options missing from README Commands: {missing}"


def test_readme_reference_has_no_row_for_a_command_that_does_not_exist() -> None:
    known = {" ".join(("backdrill", *p)) for p, _ in COMMANDS}
    assert set(reference_rows()) <= known


def test_readme_lists_every_global_option() -> None:
    match = re.search(r"^Global options:(.*?)\n\n", README, re.M | re.S)
    assert match, "README has no 'Global options:' paragraph"
    missing = [o for o in long_options(ROOT) if o not in match.group(1)]
    assert not missing, f"global options missing from README: {missing}"


# -- cron, and what the repository cites ---------------------------------------------


def test_readme_cron_lines_are_the_cron_file() -> None:
    """Every ```cron block is cron/backdrill.cron without its comments and blank lines."""
    wanted = [
        line
        for line in (REPO / "cron" / "backdrill.cron").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    blocks = fenced_blocks(README, "cron")
    assert blocks
    for block in blocks:
        assert [ln for ln in block.splitlines() if ln.strip()] == wanted


def test_the_repository_cites_no_file_outside_itself() -> None:
    absent = "PRODUCT" + ".md"
    tracked = subprocess.run(
        ["git", "grep", "-l", "-I", absent], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert tracked.stdout == "", f"files citing {absent}: {tracked.stdout.split()}"


def config_keys(model: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key of the config models, as key paths (``storage.retry.base_seconds``)."""
    keys: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        keys.append((*path, name))
        for candidate in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(candidate, type) and hasattr(candidate, "model_fields"):
                keys += config_keys(candidate, (*path, name))
    return keys


def test_the_readme_sample_names_every_config_key() -> None:
    """A key the loader accepts is in the sample, loaded or as a comment beside its
    alternative (`password` beside `password_file`)."""
    from backdrill.config.model import Config

    sample = "\n".join(fenced_blocks(README, "yaml"))
    missing = [
        ".".join(key)
        for key in config_keys(Config)
        if not re.search(rf"(?<![\w-]){re.escape(key[-1])}:", sample)
    ]
    assert not missing, f"config keys the README's sample does not name: {missing}"
