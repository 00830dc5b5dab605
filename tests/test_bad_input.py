"""Bad input everywhere: generated YAML never produces a traceback, broken manifests
and unknown backup ids are named with exit 4, and the CLI answers in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backdrill.cli.app import main
from backdrill.config.loading import load_config
from backdrill.pg.connection import ConnParams
from backdrill.runtime.errors import ConfigError
from backdrill.sample.odoo import SampleInfo
from helpers.cli import Cli, Repo, SampleCli
from helpers.repo import list_keys, read_object, write_object
from helpers.strategies import CONFIG_KEYS, nested

pytestmark = pytest.mark.reliability

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["s3://b/p", "file:///tmp/x", "file://rel", "http://h:1", "age1xyz", "all"]),
    st.text(max_size=20),
)
documents = nested(
    scalars,
    st.one_of(st.sampled_from(CONFIG_KEYS), st.text(max_size=8)),
    lists=4,
    dicts=5,
    leaves=25,
)


def _storage_like(tree: Any) -> Any:
    """Half the documents look like a config (storage -> url present)."""
    if isinstance(tree, dict):
        return {"storage": {"url": "s3://bucket/prefix", **tree}, **tree}
    return tree


@pytest.mark.slow
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=documents, shaped=st.booleans())
def test_generated_yaml_documents_never_raise_anything_but_a_config_error(
    tmp_path: Path, doc: Any, shaped: bool
) -> None:
    path = tmp_path / "generated.yaml"
    path.write_text(yaml.safe_dump(_storage_like(doc) if shaped else doc))
    try:
        load_config(path)
    except ConfigError as exc:  # every problem on a line of its own, naming the file
        lines = str(exc).split("\n")
        assert all(line.startswith(f"{path}: ") and line.isprintable() for line in lines)


@pytest.mark.slow
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200))
def test_arbitrary_text_as_config_is_one_line_exit_3_or_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = tmp_path / "text.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    capsys.readouterr()
    code = main(["--log-format", "text", "--config", str(path), "config", "check"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code in (0, 1, 3, 5), err
    if code == 3:  # one line per problem, each an error line
        lines = err.strip().split("\n")
        assert all(line.startswith("backdrill: error: ") for line in lines), err


@pytest.fixture
def one_backup(sample_cli: SampleCli, sample: SampleInfo, local_repo: Repo) -> tuple[Cli, str]:
    """One backup of ``sample`` on ``local_repo``: the CLI and its manifest's key."""
    cli = sample_cli(database=sample.database)
    assert cli("backup", "db").code == 0
    (key,) = [k for k in list_keys(local_repo) if k.endswith("manifest.json")]
    return cli, key


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("schema", "has schema_version 99; this backdrill reads 1"),
        ("json", "is not valid JSON"),
        ("field", "sha256: Field required"),
        ("type", "is not a JSON object"),
    ],
    ids=["schema", "json", "field", "type"],
)
def test_broken_manifests_exit_4_naming_the_manifest_and_the_problem(
    local_repo: Repo, one_backup: tuple[Cli, str], damage: str, expected: str
) -> None:
    cli, key = one_backup
    doc = json.loads(read_object(local_repo, key))
    backup_id = doc["id"]
    if damage == "schema":
        doc["schema_version"] = 99
        data = json.dumps(doc).encode()
    elif damage == "json":
        data = json.dumps(doc).encode()[:-20]
    elif damage == "field":
        del doc["sha256"]
        data = json.dumps(doc).encode()
    else:
        data = b"[1, 2, 3]"
    write_object(local_repo, key, data)
    verify = cli("verify", "--all")
    assert verify.code == 4
    assert key in verify.out + verify.err and expected in verify.out + verify.err
    show = cli("show", backup_id)
    assert show.code == 4
    (line,) = [e["message"] for e in show.error_records]
    assert key in line and expected in line, line


@pytest.mark.parametrize("command", ["show", "verify", "drill", "restore"])
def test_a_backup_id_that_does_not_exist_exits_4_naming_it(
    pg: ConnParams, one_backup: tuple[Cli, str], work_dir: Path, command: str
) -> None:
    cli, _key = one_backup
    missing = "20200101T000000Z-abcdef"
    dsn = f"host={pg.host} port={pg.port} user={pg.user} dbname=never_made sslmode=disable"
    args = {
        "show": ["show", missing],
        "verify": ["verify", missing],
        "drill": ["drill", "run", "--backup", missing],
        "restore": ["restore", "db", "--backup", missing, "--to", dsn],
    }[command]
    result = cli(*args)
    assert result.code == 4, result.err
    (line,) = [e["message"] for e in result.error_records]
    assert missing in line and "no " in line, line


@pytest.mark.parametrize(
    "args",
    [
        ["drill", "run", "--before", "yesterday"],
        ["restore", "db", "--jobs", "many", "--to", "x"],
        ["backup", "db", "--database"],
        ["no-such-command"],
    ],
    ids=["unknown-option", "bad-int", "missing-value", "unknown-command"],
)
def test_command_line_mistakes_are_usage_errors_exit_2_without_traceback(
    one_backup: tuple[Cli, str], args: list[str]
) -> None:
    cli, _key = one_backup
    result = cli(*args)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err and "internal error" not in result.err
