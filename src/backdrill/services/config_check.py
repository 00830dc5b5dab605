"""``config check``: each probe of the configuration as a (name, ok, detail) line."""

from __future__ import annotations

from backdrill.config import Config
from backdrill.errors import BackdrillError
from backdrill.locks import probe_conditional_write
from backdrill.pg import binaries
from backdrill.pg.connection import ConnParams, list_databases, server_version
from backdrill.storage import Storage
from backdrill.storage.base import ProbeResult


def _postgres_probes(config: Config) -> list[ProbeResult]:
    params = ConnParams.from_config(config.postgres)
    results: list[ProbeResult] = []
    try:
        with params.connect() as conn:
            version = server_version(conn)
            available = set(list_databases(conn))
    except BackdrillError as exc:
        return [ProbeResult("postgres reachable", False, str(exc))]
    results.append(
        ProbeResult("postgres reachable", True, f"{params.describe()}, server {version}")
    )
    major = int(version.split(".")[0])
    for name in ("pg_dump", "pg_restore"):
        try:
            program = binaries.find_program(name, major, bin_dir=config.postgres.bin_dir)
            results.append(ProbeResult(name, True, f"{program.version} at {program.path}"))
        except BackdrillError as exc:
            results.append(ProbeResult(name, False, str(exc)))
    wanted = config.postgres.databases
    if isinstance(wanted, list):
        for db in wanted:
            ok = db in available
            results.append(ProbeResult(f"database {db}", ok, "exists" if ok else "not found"))
    return results


def run_config_check(config: Config, storage: Storage) -> list[ProbeResult]:
    results = [ProbeResult("config valid", True, "parsed and validated")]
    results.extend(_postgres_probes(config))
    try:
        results.extend(storage.probe())
    except BackdrillError as exc:
        results.append(ProbeResult("storage reachable", False, str(exc)))
        return results
    results.append(probe_conditional_write(storage))
    return results
