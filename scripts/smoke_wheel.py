"""Smoke test of an installed backdrill (scripts/smoke-wheel.sh): run the ``backdrill``
program of a fresh virtualenv, where the wheel was installed without extras, against a
real throwaway PostgreSQL and a real S3 server (moto), both started here from the test
virtualenv. The installed program only ever runs as a subprocess.

    python scripts/smoke_wheel.py /path/to/fresh-venv/bin/backdrill
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.moto_s3 import moto_bucket

from backdrill.pg import binaries
from backdrill.pg.cluster import LocalCluster
from backdrill.sample.odoo import create_sample

KEY_ID = "smoke-key-id"
SECRET = secrets.token_urlsafe(16)  # moto accepts any; never the same twice
TIMEOUT = 600


def clean_env(home: Path) -> dict[str, str]:
    """This process's environment without BACKDRILL_*, PG* and AWS_* from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKDRILL_", "PG", "AWS_"))}
    env.update(
        AWS_CONFIG_FILE=str(home / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def run(program: Path, env: dict[str, str], *args: str, expect: str = "") -> None:
    print(f"$ backdrill {' '.join(args)}", flush=True)
    proc = subprocess.run(
        [str(program), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )
    if proc.returncode != 0 or expect not in proc.stdout:
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        sys.exit(f"smoke: `backdrill {' '.join(args)}` exited {proc.returncode}")


def write_config(path: Path, cluster: LocalCluster, endpoint: str, bucket: str, work: Path) -> None:
    (path.parent / "pg_password").write_text(cluster.password + "\n")
    (path.parent / "s3_secret").write_text(SECRET + "\n")
    path.write_text(
        "postgres:\n"
        f"  host: 127.0.0.1\n  port: {cluster.port}\n  user: postgres\n"
        f"  password_file: {path.parent / 'pg_password'}\n"
        "  sslmode: disable\n  databases: [odoo]\n"
        "storage:\n"
        f"  url: s3://{bucket}/smoke\n  endpoint_url: {endpoint}\n  region: us-east-1\n"
        f"  access_key_id: {KEY_ID}\n  secret_access_key_file: {path.parent / 's3_secret'}\n"
        "  part_size_mb: 5\n"
        f"drill: {{sandbox: local, work_dir: {work}, report_dir: {work / 'reports'}}}\n"
    )


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: smoke_wheel.py /path/to/venv/bin/backdrill")
    program = Path(sys.argv[1])
    initdb = sorted(binaries.find_all("initdb"), key=lambda p: p.major)
    if not initdb:
        sys.exit("smoke: PostgreSQL server binaries not found (run `make system-deps`)")
    home = Path(tempfile.mkdtemp(prefix="backdrill-smoke-"))
    home.chmod(0o755)  # the sandbox server runs as an unprivileged user when we are root
    try:
        with (
            moto_bucket("smoke", KEY_ID, SECRET) as endpoint,
            LocalCluster(initdb[-1].bin_dir, tuning={"fsync": "off"}) as cluster,
        ):
            create_sample(cluster.params, "odoo", home / "filestore", scale=0.2)
            config = home / "backdrill.yaml"
            write_config(config, cluster, endpoint, "smoke", home)
            env = clean_env(home)
            run(program, env, "--help", expect="drill")
            run(program, env, "--version", expect="backdrill ")
            # typer's vendored click: completion works in a virtualenv without click
            run(program, env, "--show-completion", "bash", expect="_BACKDRILL_COMPLETE")
            run(program, env, "backup", "db", "-h", expect="Example: backdrill backup db")
            cfg = ("--log-format", "text", "--config", str(config))
            run(program, env, *cfg, "config", "check")
            run(program, env, *cfg, "backup", "db")
            run(program, env, *cfg, "drill", "run")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print("smoke: the installed wheel ran --help, --version, config check, backup db, drill run")


if __name__ == "__main__":
    main()
