"""`make demo`: a throwaway PostgreSQL with a generated Odoo-shaped database and its
filestore, both backed up to a local repository with the real `backdrill` CLI, then listed.

Everything lives under ./.demo (the repository and the reports stay there afterwards);
the PostgreSQL server is stopped and deleted at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from backdrill.pg import binaries
from backdrill.pg.cluster import LocalCluster
from backdrill.sample.odoo import create_sample

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
BACKDRILL = [sys.executable, "-m", "backdrill", "--log-format", "text"]


def step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def backdrill(config: Path, *args: str) -> None:
    cmd = [*BACKDRILL, "--config", str(config), *args]
    print("$ backdrill --config", config.relative_to(ROOT), *args, flush=True)
    code = subprocess.run(cmd, check=False).returncode
    if code != 0:
        sys.exit(f"demo: `backdrill {' '.join(args)}` exited {code}")


def main() -> None:
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    initdb = sorted(binaries.find_all("initdb"), key=lambda p: p.major)
    if not initdb:
        sys.exit("demo: PostgreSQL server binaries not found (run `make system-deps`)")
    step(f"starting a throwaway PostgreSQL {initdb[-1].version}")
    with LocalCluster(initdb[-1].bin_dir) as cluster:
        print(f"listening on {cluster.address}")
        step("generating an Odoo-shaped database `odoo` and its filestore")
        filestore = DEMO / "filestore" / "odoo"
        info = create_sample(cluster.params, "odoo", filestore, scale=2)
        print(f"{info.attachments} attachments, {info.files} files in {filestore}")
        secret = DEMO / "pg_password"
        secret.write_text(cluster.password + "\n")
        secret.chmod(0o600)
        config = DEMO / "backdrill.yaml"
        config.write_text(
            "# written by `make demo`\n"
            "postgres:\n"
            f"  host: 127.0.0.1\n  port: {cluster.port}\n  user: postgres\n"
            f"  password_file: {secret}\n  sslmode: disable\n  databases: [odoo]\n"
            f"storage:\n  url: file://{DEMO / 'repo'}\n"
            f"files:\n  source: {filestore}\n"
            f"drill:\n  report_dir: {DEMO / 'drill-reports'}\n"
        )
        os.environ.pop("PGPASSWORD", None)
        step("checking the configuration")
        backdrill(config, "config", "check")
        step("nightly database backup (cron: 03:00 UTC)")
        backdrill(config, "backup", "db")
        step("nightly filestore backup (cron: 04:00 UTC)")
        backdrill(config, "backup", "files")
        step("the repository")
        backdrill(config, "list")
        backdrill(config, "list", "files")
        step("restore drill (cron: quarterly, and ideally after every backup)")
        backdrill(config, "drill", "run")
        backdrill(config, "drill", "history", "--verify")
        step("stopping the throwaway PostgreSQL")
    reports = sorted((DEMO / "drill-reports").glob("*/report.html"))
    print(f"\ndemo done: repository in {DEMO / 'repo'}")
    if reports:
        print(f"drill report: {reports[-1]}")


if __name__ == "__main__":
    main()
