"""``backup db --jobs N`` stores a file only once pg_dump has finished writing it: a
file closed and then written again is never committed truncated."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import yaml

from backdrill.pg import binaries
from backdrill.repository.zstdio import decompressed
from backdrill.runtime.errors import PostgresError
from backdrill.sample.odoo import SampleInfo
from helpers.cli import Repo, SampleCli
from helpers.repo import list_keys, manifests, read_object

EXTRA = "99999.dat"


def _wrapped_pg_dump(bin_dir: Path, content: Path, pause: float) -> Path:
    """A ``pg_dump`` that runs the real one, then writes one more data file into the
    directory it wrote in two steps: half, closed; a pause; the rest appended."""
    real = max(binaries.find_all("pg_dump"), key=lambda p: p.major).path
    half = content.stat().st_size // 2
    script = bin_dir / "pg_dump"
    script.write_text(
        f"""#!/bin/sh
for arg; do
  case "$arg" in
    --version) exec "{real}" --version ;;
    --file=*) out="${{arg#--file=}}" ;;
  esac
done
"{real}" "$@" || exit $?
head -c {half} "{content}" > "$out/{EXTRA}"
sleep {pause}
tail -c +{half + 1} "{content}" >> "$out/{EXTRA}"
"""
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir


def test_a_data_file_written_again_after_its_close_is_never_committed_truncated(
    sample_cli: SampleCli, tmp_path: Path, shared_sample: SampleInfo, repo: Repo, work_dir: Path
) -> None:
    content = tmp_path / "extra-content"
    content.write_bytes(os.urandom(400_000) + secrets.token_bytes(16))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _wrapped_pg_dump(bin_dir, content, pause=2)
    cli = sample_cli(repo, backup={"work_dir": str(work_dir)})
    config = cli.config
    doc = yaml.safe_load(config.read_text())
    doc["postgres"]["bin_dir"] = str(bin_dir)
    config.write_text(yaml.safe_dump(doc))
    result = cli("backup", "db", "--jobs", "2")
    assert list(work_dir.iterdir()) == []
    if result.code == 0:
        # committed: every object is the whole file pg_dump finished
        (manifest,) = manifests(repo)
        prefix = f"db/{shared_sample.database}/{manifest['id']}/"
        extra = next(o for o in manifest["objects"] if o["name"].endswith(EXTRA + ".zst"))
        assert extra["raw_size"] == content.stat().st_size
        stored = decompressed(
            read_object(repo, prefix + extra["name"]), extra["name"], limit=1 << 30
        )
        assert stored == content.read_bytes()
    else:
        # or refused cleanly: the error names the file, nothing is left in the repository
        assert result.code == PostgresError.exit_code, result.err
        assert EXTRA in result.err and "again after it was stored" in result.err, result.err
        assert manifests(repo) == []
        assert [k for k in list_keys(repo) if not k.startswith(("locks/", "status/"))] == []
