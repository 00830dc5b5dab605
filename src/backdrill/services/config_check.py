"""``config check``: each probe of the configuration as a (name, ok, detail) line."""

from __future__ import annotations

from dataclasses import replace

from backdrill.config.model import Config
from backdrill.config.sources import Source, configured_sources
from backdrill.pg import binaries
from backdrill.pg.connection import ConnParams, as_text, list_databases, server_version
from backdrill.policy.ssot import conflicts_of, missing_sources, policy, ssot_of
from backdrill.report.evidence import evidence_lock
from backdrill.repository.layout import DEFAULT_SOURCE
from backdrill.repository.locks import probe_conditional_write
from backdrill.runtime.errors import BackdrillError
from backdrill.runtime.retry import NO_RETRY
from backdrill.runtime.timeutil import utcnow
from backdrill.services.config_probes import drill_probes, files_source_probes, webhook_probes
from backdrill.services.config_security import security_probes, tls_probes
from backdrill.services.login_probes import login_probes
from backdrill.storage import Storage
from backdrill.storage.base import ProbeResult

#: seconds ``config check`` waits for PostgreSQL to accept a connection
PROBE_CONNECT_TIMEOUT = 5


def _postgres_probes(config: Config, source: Source) -> tuple[list[ProbeResult], int | None]:
    """The rows of one PostgreSQL source (a named one's rows end in ``(source NAME)``),
    and the server's major version (None if unreachable)."""
    results, major = _source_probes(config, source)
    if source.name == DEFAULT_SOURCE:
        return results, major
    named = [replace(r, name=f"{r.name} (source {source.name})") for r in results]
    return named, major


def _source_probes(config: Config, source: Source) -> tuple[list[ProbeResult], int | None]:
    section = "postgres" if source.name == DEFAULT_SOURCE else f"sources -> {source.name}"
    params = ConnParams.from_config(source.postgres, config.security)
    params = replace(params, connect_timeout=min(params.connect_timeout, PROBE_CONNECT_TIMEOUT))
    results: list[ProbeResult] = []
    try:
        with params.connect(policy=NO_RETRY) as conn:
            version = server_version(conn)
            listed = list_databases(conn)
            wanted = source.postgres.databases
            to_read = listed if wanted == "all" else [d for d in wanted or [] if d in listed]
            login_rows = login_probes(conn, params, to_read)
            row = conn.execute(
                "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            ).fetchone()
    except BackdrillError as exc:
        detail = f"{exc}: check {section} -> host, port, user and password"
        return [ProbeResult("postgres reachable", False, detail)], None
    results.append(
        ProbeResult("postgres reachable", True, f"{params.describe()}, server {version}")
    )
    tls = as_text(row[0]) if row is not None and row[0] is not None else None
    results.append(
        ProbeResult(
            "postgres TLS",
            True,
            f"{tls} negotiated" if tls else f"not in use (sslmode {params.sslmode or 'default'})",
        )
    )
    results.extend(login_rows)
    available = set(listed)
    major = binaries.major_version(version)
    for name in ("pg_dump", "pg_restore"):
        try:
            program = binaries.find_program(name, major, bin_dir=source.postgres.bin_dir)
            results.append(ProbeResult(name, True, f"{program.version} at {program.path}"))
        except BackdrillError as exc:
            results.append(ProbeResult(name, False, str(exc)))
    if isinstance(wanted, list):
        for db in wanted:
            ok = db in available
            detail = "exists" if ok else f"not found: fix {section} -> databases"
            results.append(ProbeResult(f"database {db}", ok, detail))
    return results, major


def ssot_probes(config: Config) -> list[ProbeResult]:
    """One row for the SSOT in force, and one FAIL row per value the config gives that
    differs from it."""
    ssot = ssot_of(config)
    if ssot is None:
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
    rows.extend(
        ProbeResult(
            f"ssot source {name}",
            True,
            f"the SSOT schedules backup db of source {name}; the config has no "
            f"sources -> {name}, so nothing backs it up",
            warning=True,
        )
        for name in missing_sources(config, ssot)
    )
    return rows


def _storage_probes(storage: Storage) -> tuple[list[ProbeResult], bool]:
    """The repository's rows, and whether it could be reached."""
    try:
        results = storage.probe()
    except BackdrillError as exc:
        return [ProbeResult("storage reachable", False, str(exc))], False
    reachable = all(r.ok for r in results if r.name != "object lock")
    if reachable:
        results.append(probe_conditional_write(storage))
    return results, reachable


def run_config_check(config: Config, storage: Storage) -> list[ProbeResult]:
    """Every probe, each whatever the others found: all problems are reported at once.
    ``storage`` is opened for probing (short timeouts, no retries: storage/__init__.py
    ``open_probe_storage``)."""
    results = [ProbeResult("config valid", True, "parsed and validated")]
    results.extend(ssot_probes(config))
    results.extend(security_probes(config))
    majors: list[int | None] = []
    for source in configured_sources(config):
        pg_rows, found = _postgres_probes(config, source)
        results.extend(pg_rows)
        majors.append(found)
    major = majors[0] if majors else None
    results.extend(tls_probes(config))
    repo_rows, reachable = _storage_probes(storage)
    results.extend(repo_rows)
    if reachable:
        results.append(evidence_lock_probe(config, storage))
    results.extend(files_source_probes(config))
    results.extend(drill_probes(config, storage if reachable else None, major))
    results.extend(webhook_probes(config))
    return results


def evidence_lock_probe(config: Config, storage: Storage) -> ProbeResult:
    """How drill evidence will be written: under object lock, or why not (not a failure:
    the evidence is then written without retention)."""
    lock = evidence_lock(
        config.drill.evidence_lock, storage.capabilities(), config.retention.days, utcnow()
    )
    return ProbeResult("evidence object lock", True, lock.note)
