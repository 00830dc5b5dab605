"""A streaming hot standby of a test cluster: ``pg_basebackup -R`` from the primary into
a new data directory, started on its own port (the throwaway cluster's machinery)."""

from __future__ import annotations

import time

from backdrill.pg import command
from backdrill.pg.cluster import LocalCluster


class Standby(LocalCluster):
    """``with Standby(primary) as s: s.params`` (the primary's roles and password)."""

    def __init__(self, primary: LocalCluster) -> None:
        super().__init__(primary.bin_dir, tuning={"hot_standby": "on"}, superuser=primary.superuser)
        self.primary = primary
        self.password = primary.password

    def _initdb(self) -> None:  # a base backup of the primary instead of initdb
        assert self.root is not None
        self._chown(self.root)
        self.socket_dir.mkdir(mode=0o700)
        self._chown(self.socket_dir)
        env = self._env()
        env["PGPASSWORD"] = self.primary.password
        command.run(
            [
                self.bin_dir / "pg_basebackup",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.primary.port),
                "-U",
                self.superuser,
                "-D",
                self.data_dir,
                "-R",
                "-X",
                "stream",
                "--no-sync",
                "--checkpoint=fast",
            ],
            env=env,
            cwd=self.root,
            user=self.run_as,
            what="pg_basebackup",
            timeout=300,
        )
        conf = [f"{k} = '{v}'" for k, v in self.tuning.items()]
        conf.append(f"unix_socket_directories = '{self.socket_dir}'")
        with (self.data_dir / "postgresql.conf").open("a") as fh:
            fh.write("\n# backdrill test standby\n" + "\n".join(conf) + "\n")

    def catch_up(self, timeout: float = 60) -> None:
        """Wait until the standby has replayed everything the primary has written."""
        with self.primary.params.connect() as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
        assert row is not None
        deadline = time.monotonic() + timeout
        with self.params.connect() as conn:
            while time.monotonic() < deadline:
                done = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (str(row[0]),)
                ).fetchone()
                if done and done[0]:
                    return
                time.sleep(0.1)
        raise TimeoutError("the standby did not catch up")
