"""Configuration: lookup order, secrets from files and environment, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from backdrill.config.loading import find_config_file, load_config
from backdrill.runtime.errors import ConfigError
from helpers.cli import Cli, run_cli_process

VALID = "storage:\n  url: file:///var/backups/backdrill\n"

# (yaml text, expected one-line message fragment naming the key path)
MALFORMED = [
    ("", "the file is empty"),
    ("- just\n- a list\n", "expected a mapping of keys at the top level"),
    ("storage: {url: [unclosed\n", "invalid YAML at line"),
    ("postgres: {host: x}\n", "storage: required key is missing"),
    ("storage: {url: ftp://host/x}\n", "storage -> url: must start with s3:// or file://"),
    ("storage: {url: 's3:///nobucket'}\n", "storage -> url: s3 URL needs a bucket"),
    ("storage: {url: 'file://relative/path'}\n", "storage -> url: file URL needs an absolute path"),
    (VALID + "postgres: {port: 99999}\n", "postgres -> port: Input should be less than or equal"),
    (VALID + "postgres: {prot: 5432}\n", "postgres -> prot: unknown key"),
    (VALID + "postgres: {sslmode: sometimes}\n", "postgres -> sslmode: Input should be"),
    (VALID + "retention: {days: 0}\n", "retention -> days: Input should be greater than or equal"),
    (VALID + "retention: {min_keep: many}\n", "retention -> min_keep: Input should be a valid int"),
    (VALID + "targets: {rpo_hours: -1}\n", "targets -> rpo_hours: Input should be greater than 0"),
    (VALID + "drill: {sandbox: vm}\n", "drill -> sandbox: Input should be 'local', 'docker'"),
    (VALID + "storage2: {}\n", "storage2: unknown key"),
    (
        "storage: {url: 's3://b/p', endpoint_url: 'minio:9000'}\n",
        "storage -> endpoint_url: must be an http:// or https:// URL",
    ),
    (
        "storage: {url: 's3://b/p', object_lock: {mode: STRICT, days: 3}}\n",
        "storage -> object_lock -> mode: Input should be 'GOVERNANCE' or 'COMPLIANCE'",
    ),
    (
        VALID + "postgres: {password_file: /nonexistent/secret}\n",
        "postgres: cannot read password_file /nonexistent/secret: No such file or directory",
    ),
    (
        VALID + "postgres: {password: a, password_file: /etc/hostname}\n",
        "postgres: give either password or password_file, not both",
    ),
    (VALID + "postgres: {databases: [odoo, '']}\n", "postgres -> databases -> 1"),
]


def _one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> tuple[Path, str]:
    """``list`` with a configuration file of ``text``: exit 3 and one line of error, no
    traceback; the file and that line."""
    path = tmp_path / "backdrill.yaml"
    path.write_text(text)
    result = Cli(capsys, path)("list")
    assert result.code == 3
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    return path, lines[0]


@pytest.mark.parametrize(("text", "expected"), MALFORMED)
def test_config_error_is_one_line_naming_the_key_path_and_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path, line = _one_error_line(tmp_path, capsys, text)
    assert expected in line
    assert str(path) in line


def test_config_lookup_order_explicit_then_env_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "backdrill.yaml").write_text(VALID)
    assert find_config_file(None) == Path("backdrill.yaml")
    other = tmp_path / "other.yaml"
    other.write_text(VALID)
    monkeypatch.setenv("BACKDRILL_CONFIG", str(other))
    assert find_config_file(None) == other
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text(VALID)
    assert find_config_file(explicit) == explicit


def test_missing_config_names_every_place_tried(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        find_config_file(None)
    assert "BACKDRILL_CONFIG" in str(info.value)
    assert "/etc/backdrill/backdrill.yaml" in str(info.value)
    assert info.value.exit_code == 3


def test_secrets_come_from_files_and_never_show_in_repr(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cr3t-pg\n")
    (tmp_path / "sk").write_text("s3cr3t-s3")
    path = tmp_path / "c.yaml"
    path.write_text(
        "postgres: {password_file: pw}\n"
        "storage: {url: 's3://b/p', access_key_id: AK, secret_access_key_file: sk}\n"
    )
    config = load_config(path)
    assert config.postgres.password is not None
    assert config.postgres.password.get_secret_value() == "s3cr3t-pg"
    assert config.storage.secret_access_key is not None
    assert config.storage.secret_access_key.get_secret_value() == "s3cr3t-s3"
    assert "s3cr3t" not in repr(config)
    assert "s3cr3t" not in str(config.model_dump())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            VALID + "files: {source: /a}\nfiles: {source: /b}\n",
            "files: key repeated at line 4 (first at line 3)",
        ),
        (
            "storage:\n  url: file:///a\n  region: x\n  url: file:///b\n",
            "storage -> url: key repeated at line 4 (first at line 2)",
        ),
        (
            VALID + "postgres: {databases: [a]}\nretention: [{days: 1, days: 2}]\n",
            "retention -> 0 -> days: key repeated at line 4",
        ),
    ],
)
def test_a_repeated_key_is_an_error_naming_its_path_and_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    _path, line = _one_error_line(tmp_path, capsys, text)
    assert expected in line


def test_on_off_yes_no_are_strings_as_keys_and_values(tmp_path: Path) -> None:
    """YAML 1.1 reads them as booleans: `notify: {on: [...]}` became the key True."""
    path = tmp_path / "c.yaml"
    path.write_text(
        VALID
        + "notify: {webhook_url: http://hook.example/x, on: [failure, success]}\n"
        + "postgres:\n  databases: [on, off, yes, no, y, n, Yes, OFF]\n"
        + "  sslmode: disable\n"
    )
    config = load_config(path)
    assert config.notify.on == ["failure", "success"]
    assert config.postgres.databases == ["on", "off", "yes", "no", "y", "n", "Yes", "OFF"]


def test_true_and_false_remain_booleans(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("storage: {url: 's3://b/p', verify_tls: false}\nbackup: {globals: True}\n")
    config = load_config(path)
    assert config.storage.verify_tls is False
    assert config.backup.globals is True


def test_every_config_problem_is_reported_at_once_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "backdrill.yaml"
    cli = Cli(capsys, path)
    path.write_text(
        "storage: {url: ftp://host/x}\n"
        "postgres: {port: 99999, prot: 5432}\n"
        "retention: {days: 0}\n"
        "drill: {sandbox: vm}\n"
    )
    assert cli("list").code == 3
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert [ln.split(": ")[1] for ln in lines] == [
        "postgres -> port",
        "postgres -> prot",
        "storage -> url",
        "retention -> days",
        "drill -> sandbox",
    ]
    assert all(ln.startswith(f"{path}: ") for ln in lines)
    assert "more)" not in str(info.value)


@pytest.mark.slow
def test_every_problem_is_one_stderr_line_in_text_mode(tmp_path: Path) -> None:
    path = tmp_path / "backdrill.yaml"
    path.write_text("storage: {url: ftp://host/x}\nretention: {days: 0}\n")
    result = run_cli_process("--log-format", "text", "--config", str(path), "list")
    assert result.code == 3
    lines = result.err.strip().splitlines()
    assert len(lines) == 2, result.err
    assert all(ln.startswith("backdrill: error: ") for ln in lines)
    assert "storage -> url" in lines[0]
    assert "retention -> days" in lines[1]


def test_an_oversized_config_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "backdrill.yaml"
    path.write_text(VALID + "#" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_config(path)
