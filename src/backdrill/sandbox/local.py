"""``local``: a throwaway cluster from binaries of the backup's major version."""

from __future__ import annotations

from pathlib import Path

from backdrill.pg import binaries
from backdrill.pg.cluster import LocalCluster
from backdrill.pg.connection import server_version
from backdrill.runtime.errors import SandboxError
from backdrill.sandbox.base import MAINTENANCE_DB, Sandbox, SandboxInfo, free_throwaway_name


class LocalSandbox(Sandbox):
    kind = "local"

    def __init__(
        self,
        major: int,
        *,
        bin_dir: Path | None = None,
        allow_newer: bool = False,
        base_dir: Path | None = None,
        keep: bool = False,
    ) -> None:
        super().__init__(keep=keep)
        self.major = major
        self.bin_dir = bin_dir
        self.allow_newer = allow_newer
        self.base_dir = base_dir
        self.cluster: LocalCluster | None = None

    def _server_bin_dir(self) -> tuple[Path, int]:
        candidates = binaries.find_all("initdb", self.bin_dir)
        chosen = binaries.choose(candidates, self.major, allow_newer=self.allow_newer)
        if chosen is None:
            found = ", ".join(f"{p.version} ({p.bin_dir})" for p in candidates) or "none"
            raise SandboxError(
                f"no PostgreSQL {self.major} server binaries for the local sandbox; found: {found}",
                hint=f"install postgresql-{self.major}, use --sandbox docker, or --allow-newer",
            )
        return chosen.bin_dir, chosen.major

    def check_available(self) -> None:
        self._server_bin_dir()

    def provision(self, database: str) -> SandboxInfo:
        bin_dir, major = self._server_bin_dir()
        self.cluster = LocalCluster(bin_dir, base_dir=self.base_dir)
        self.cluster.start()
        admin = self.cluster.params.with_db(MAINTENANCE_DB)
        with admin.connect() as conn:
            version = server_version(conn)
        name = free_throwaway_name(admin, database)
        self.info = SandboxInfo(
            kind=self.kind,
            server_version=version,
            address=self.cluster.address,
            params=admin.with_db(name),
            admin=admin,
            segregated=(
                "separate throwaway cluster on 127.0.0.1 only, private socket directory, "
                f"random port and password, data in {self.cluster.root}"
            ),
            tuned_for_restore=True,
            newer_major=major != self.major,
        )
        return self.info

    def teardown(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None

    def connect_hint(self) -> str:
        if self.cluster is None or self.info is None or self.cluster.root is None:
            return ""
        pwfile = self.cluster.root / "password"
        pwfile.write_text(self.cluster.password + "\n")
        pwfile.chmod(0o600)
        p = self.info.params
        stop = self.cluster.stop_command()
        return (
            f"PGPASSFILE= PGPASSWORD=$(cat {pwfile}) psql 'host={p.host} port={p.port} "
            f"user={p.user} dbname={p.dbname}'  (stop it with: {stop}, then rm -r "
            f"{self.cluster.root})"
        )
