"""``config check``: each probe of the configuration as a (name, ok, detail) line."""

from __future__ import annotations

from backdrill.config import Config
from backdrill.errors import BackdrillError
from backdrill.evidence import evidence_lock
from backdrill.locks import probe_conditional_write
from backdrill.pg import binaries
from backdrill.pg.connection import ConnParams, list_databases, server_version
from backdrill.services.login_probes import login_probes
from backdrill.ssot import conflicts_of, policy, ssot_of
from backdrill.storage import Storage
from backdrill.storage.base import ProbeResult
from backdrill.timeutil import utcnow


def _postgres_probes(config: Config) -> list[ProbeResult]:
    params = ConnParams.from_config(config.postgres)
    results: list[ProbeResult] = []
    try:
        with params.connect() as conn:
            version = server_version(conn)
            listed = list_databases(conn)
            wanted = config.postgres.databases
            to_read = listed if wanted == "all" else [d for d in wanted or [] if d in listed]
            login_rows = login_probes(conn, params, to_read)
    except BackdrillError as exc:
        return [ProbeResult("postgres reachable", False, str(exc))]
    results.append(
        ProbeResult("postgres reachable", True, f"{params.describe()}, server {version}")
    )
    results.extend(login_rows)
    available = set(listed)
    major = int(version.split(".")[0])
    for name in ("pg_dump", "pg_restore"):
        try:
            program = binaries.find_program(name, major, bin_dir=config.postgres.bin_dir)
            results.append(ProbeResult(name, True, f"{program.version} at {program.path}"))
        except BackdrillError as exc:
            results.append(ProbeResult(name, False, str(exc)))
    if isinstance(wanted, list):
        for db in wanted:
            ok = db in available
            results.append(ProbeResult(f"database {db}", ok, "exists" if ok else "not found"))
    return results


def ssot_probes(config: Config) -> list[ProbeResult]:
    """One row for the SSOT in force, and one FAIL row per value the config gives that
    differs from it."""
    if ssot_of(config) is None:
        return []
    p = policy(config)
    rows = [
        ProbeResult(
            "ssot",
            True,
            f"{p.source}: RPO {p.rpo_hours:g} h, RTO {p.rto_hours:g} h, "
            f"retention {p.retention_days} days",
        )
    ]
    if p.schedules:
        rows.append(
            ProbeResult(
                "ssot schedules (UTC)",
                True,
                ", ".join(f"{job} {cron}" for job, cron in p.schedules.items()),
            )
        )
    rows.extend(
        ProbeResult("ssot agreement", False, f"{diff} (the SSOT applies)")
        for diff in conflicts_of(config)
    )
    return rows


def run_config_check(config: Config, storage: Storage) -> list[ProbeResult]:
    results = [ProbeResult("config valid", True, "parsed and validated")]
    results.extend(ssot_probes(config))
    results.extend(_postgres_probes(config))
    try:
        results.extend(storage.probe())
    except BackdrillError as exc:
        results.append(ProbeResult("storage reachable", False, str(exc)))
        return results
    results.append(probe_conditional_write(storage))
    results.append(evidence_lock_probe(config, storage))
    return results


def evidence_lock_probe(config: Config, storage: Storage) -> ProbeResult:
    """How drill evidence will be written: under object lock, or why not (not a failure:
    the evidence is then written without retention)."""
    lock = evidence_lock(
        config.drill.evidence_lock, storage.capabilities(), config.retention.days, utcnow()
    )
    return ProbeResult("evidence object lock", True, lock.note)
