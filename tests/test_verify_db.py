"""``backdrill verify`` of database backups against real backups and real corruption."""

from __future__ import annotations

from backdrill.runtime.timeutil import new_id
from backdrill.sample.odoo import SampleInfo
from helpers.cli import Cli, Repo, SampleCli
from helpers.repo import manifests, read_object, write_object


def _backup(sample_cli: SampleCli, sample: SampleInfo, repo: Repo) -> tuple[Cli, str]:
    """Two backups of ``sample`` on ``repo``: the CLI and the database's key prefix."""
    cli = sample_cli(repo, database=sample.database)
    for _ in range(2):
        result = cli("backup", "db")
        assert result.code == 0, result.err
    return cli, f"db/{sample.database}/"


def test_verify_all_with_read_data_passes_on_good_backups(
    sample_cli: SampleCli, sample: SampleInfo, repo: Repo
) -> None:
    cli, _prefix = _backup(sample_cli, sample, repo)
    result = cli("verify", "--all", "--read-data")
    assert result.code == 0, result.err
    assert "2 backup(s) verified" in result.out
    assert "pg_restore --list reads" in result.out
    first = manifests(repo)[0]["id"]
    one = cli("verify", first)
    assert one.code == 0, one.err


def test_verify_exits_4_naming_every_failing_backup(
    sample_cli: SampleCli, sample: SampleInfo, local_repo: Repo
) -> None:
    cli, prefix = _backup(sample_cli, sample, local_repo)
    first, second = sorted(m["id"] for m in manifests(local_repo))
    # same size, one byte flipped: only --read-data sees it
    key = f"{prefix}{first}/dump.pgdump.zst"
    data = bytearray(read_object(local_repo, key))
    data[len(data) // 2] ^= 0xFF
    write_object(local_repo, key, bytes(data))
    # truncated: the size check sees it
    truncated = f"{prefix}{second}/dump.pgdump.zst"
    write_object(local_repo, truncated, read_object(local_repo, truncated)[:100])
    # unreadable manifest
    broken = f"{prefix}{new_id()}/manifest.json"
    write_object(local_repo, broken, b"{")

    quick = cli("verify", "--all")
    assert quick.code == 4
    assert second in quick.err
    assert broken in quick.err
    assert first not in quick.err

    full = cli("verify", "--all", "--read-data")
    assert full.code == 4
    for name in (first, second, broken):
        assert name in full.err
    assert "sha256" in full.err or "checksum" in full.err  # zstd frame or sha256

    unknown = cli("verify", "20200101T000000Z-abcdef")
    assert unknown.code == 4
    assert "no backup with id" in unknown.err
    usage = cli("verify")
    assert usage.code == 2
