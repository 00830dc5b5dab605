"""The SSOT as the source of targets and retention; disagreeing config values named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from backdrill.config.loading import load_config
from backdrill.pg.connection import ConnParams
from backdrill.policy.ssot import conflicts_of, policy
from backdrill.runtime.errors import ConfigError
from helpers.cli import Cli, Repo, write_config

REPO = Path(__file__).resolve().parent.parent
SSOT = REPO / "ops/ssot/system_design_map.yaml"


def _config(tmp_path: Path, extra: str = "") -> Path:
    shutil.copy(SSOT, tmp_path / "ssot.yaml")
    path = tmp_path / "backdrill.yaml"
    path.write_text(f"ssot: ssot.yaml\nstorage: {{url: 'file://{tmp_path}/repo'}}\n{extra}")
    return path


def test_targets_and_retention_come_from_the_ssot(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path))
    assert config.targets.rpo_hours == 24 and config.targets.rto_hours == 4
    assert config.retention.days == 30 and config.retention.min_keep == 7
    p = policy(config)
    assert p.rpo_hours == 24 and p.warning_fraction == 0.9 and p.drill_max_age_days == 95
    assert p.schedules["backup db"] == "0 3 * * *"
    assert conflicts_of(config) == ()


def test_agreeing_values_are_fine_and_disagreeing_ones_are_named(tmp_path: Path) -> None:
    config = load_config(
        _config(tmp_path, "targets: {rpo_hours: 24, rto_hours: 2}\nretention: {days: 14}\n")
    )
    assert conflicts_of(config) == (
        "targets -> rto_hours: config 2, SSOT 4",
        "retention -> days: config 14, SSOT 30",
    )
    assert config.targets.rto_hours == 4  # the SSOT applies
    assert config.retention.days == 30


def test_missing_ssot_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "backdrill.yaml"
    path.write_text(f"ssot: nowhere.yaml\nstorage: {{url: 'file://{tmp_path}/repo'}}\n")
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: cannot read"):
        load_config(path)


def test_invalid_ssot_names_the_key(tmp_path: Path) -> None:
    path = _config(tmp_path)
    ssot = tmp_path / "ssot.yaml"
    ssot.write_text(ssot.read_text().replace("rpo_hours: 24", "rpo_hours: -1"))
    with pytest.raises(ConfigError, match=r"recovery_objectives -> rpo_hours: Input should be"):
        load_config(path)


def test_config_check_names_the_values_that_differ(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pg: ConnParams, local_repo: Repo
) -> None:
    shutil.copy(SSOT, tmp_path / "ssot.yaml")
    config = write_config(
        tmp_path / "c.yaml",
        pg,
        local_repo,
        ssot="ssot.yaml",
        targets={"rpo_hours": 12},
        retention={"days": 30},
    )
    cli_config = Cli(capsys, config)
    result = cli_config("config", "check")
    assert result.code == 1
    assert "ssot agreement" in result.out
    assert "targets -> rpo_hours: config 12, SSOT 24" in result.out
    assert "retention -> days" not in result.out  # agrees
    agreeing = write_config(tmp_path / "ok.yaml", pg, local_repo, ssot="ssot.yaml")
    cli_agreeing = Cli(capsys, agreeing)
    ok = cli_agreeing("config", "check")
    assert ok.code == 0, ok.out
    assert "RPO 24 h, RTO 4 h, retention 30 days" in ok.out
    assert "backup db 0 3 * * *, backup files 0 4 * * *" in ok.out
