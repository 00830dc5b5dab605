"""``drill run``: restore the latest backup into a throwaway PostgreSQL, verify it
against what was dumped, measure RPO and RTO against the targets, and write chained
evidence reports."""

from __future__ import annotations

import contextlib
import functools
import getpass
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from backdrill import __version__
from backdrill.catalog import list_db_backups, select_backup
from backdrill.checks import Check, compare_odoo, compare_row_counts
from backdrill.errors import BackdrillError, IntegrityError
from backdrill.evidence import (
    REPORT_NAMES,
    evidence_lock,
    load_evidence,
    report_key,
    store_report_files,
)
from backdrill.manifest import DbManifest
from backdrill.objectives import RpoResult, RtoResult, evaluate_rpo, evaluate_rto
from backdrill.odoo import Neutralization, is_odoo, neutralize, odoo_facts
from backdrill.pg import binaries
from backdrill.pg.introspect import row_count_map
from backdrill.pg.restore import RestoreFailed, RestoreOptions, default_jobs, pg_restore
from backdrill.report.model import (
    BackupRef,
    CheckEntry,
    DrillReport,
    Rpo,
    Rto,
    SandboxRef,
    seal,
    with_report_digest,
)
from backdrill.report.render import render_html, render_markdown
from backdrill.sandbox import Sandbox, SandboxInfo, open_sandbox
from backdrill.services.context import RunContext
from backdrill.services.drill_files import FilesOutcome, check_filestore, restore_filestore
from backdrill.services.fetch import fetch_backup, readable_manifest
from backdrill.signing import load_signing_key, public_key_text, sign
from backdrill.timeutil import human_duration, new_id, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DrillOptions:
    backup: str = "latest"
    database: str | None = None
    sandbox: str | None = None
    report_dir: Path | None = None
    keep_sandbox: bool = False
    allow_newer: bool = False
    jobs: int | None = None


@dataclass
class DrillOutcome:
    report: DrillReport
    report_dir: Path
    exit_code: int
    keep_hint: str | None = None


@dataclass
class _Phases:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def time(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        log.info("drill phase %s started", name, extra={"fields": {"phase": name}})
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - start, 3)


def operator_name() -> str:
    override = os.environ.get("BACKDRILL_OPERATOR")
    if override:
        return override
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _verify(
    manifest: DbManifest, info: SandboxInfo, neutralized: Neutralization | None
) -> list[Check]:
    added = neutralized.inserted if neutralized else None
    with info.params.connect() as conn:
        checks = [compare_row_counts(manifest.row_counts(), row_count_map(conn), added)]
        checks.extend(compare_odoo(manifest.odoo, odoo_facts(conn)))
        if manifest.odoo is not None:
            row = conn.execute(
                "SELECT value FROM ir_config_parameter WHERE key = 'database.is_neutralized'"
            ).fetchone()
            active_mail = conn.execute(
                "SELECT count(*) FROM ir_mail_server WHERE active AND smtp_host <> 'invalid'"
            ).fetchone()
            neutral = row is not None and str(row[0]).lower() in ("true", "1")
            no_mail = active_mail is not None and active_mail[0] == 0
            checks.append(
                Check(
                    "odoo_neutralized",
                    "pass" if neutral and no_mail else "fail",
                    "database.is_neutralized = true, no active real mail server"
                    if neutral and no_mail
                    else "the restored copy is not neutralized",
                )
            )
    return checks


def _provision(sandbox: Sandbox, database: str, phases: _Phases) -> SandboxInfo:
    with phases.time("provision"):
        return sandbox.provision(database)


def _restore(
    ctx: RunContext,
    manifest: DbManifest,
    provisioning: Future[SandboxInfo],
    jobs: int,
    phases: _Phases,
    workdir: Path,
    files: FilesOutcome,
) -> tuple[SandboxInfo, list[Check], Neutralization | None]:
    """Download (while the sandbox is provisioned), verify, restore and neutralize:
    the sandbox, the checks of these phases, and what the neutralization changed."""
    checks: list[Check] = []
    done: Neutralization | None = None
    with phases.time("download"):
        dump = fetch_backup(ctx.storage, manifest, workdir, ctx.reporter, ctx.config)
    info = provisioning.result()
    major = int(manifest.server_version.split(".")[0])
    program = binaries.find_program(
        "pg_restore",
        max(major, int(info.server_version.split(".")[0])),
        bin_dir=ctx.config.postgres.bin_dir,
    )
    count = len(manifest.stored_objects())
    what = f"{count} objects" if count > 1 else "the dump"
    checks.append(
        Check(
            "checksum",
            "pass",
            f"sha256 {manifest.sha256} and size {manifest.stored_size} bytes of {what} "
            "match the manifest",
        )
    )
    with phases.time("restore"):
        pg_restore(program, dump, info.params, RestoreOptions(jobs=jobs))
        dump_path = Path(dump)
        if dump_path.is_dir():
            shutil.rmtree(dump_path)
        else:
            dump_path.unlink()
        checks.append(Check("pg_restore", "pass", f"no errors ({jobs} parallel jobs)"))
        with info.params.connect() as conn:
            if is_odoo(conn):
                done = neutralize(conn)
                log.info("restored copy neutralized: %s", done.describe())
        restore_filestore(ctx, manifest, workdir, files)
    return info, checks, done


def run_drill(ctx: RunContext, options: DrillOptions) -> DrillOutcome:
    cfg = ctx.config
    drill_start = utcnow()
    drill_id = new_id(drill_start)
    listing = list_db_backups(ctx.storage)
    manifest = select_backup(listing.backups, options.backup, database=options.database)
    manifest = readable_manifest(cfg, manifest)  # exit 3 on a missing/wrong identity
    history = [(m.id, m.created_at) for m in listing.backups if m.database == manifest.database]
    kind = options.sandbox or cfg.drill.sandbox
    jobs = options.jobs or default_jobs(cfg.drill.jobs)
    log.info(
        "drill %s of backup %s (%s) in a %s sandbox",
        drill_id,
        manifest.id,
        manifest.database,
        kind,
        extra={"fields": {"drill_id": drill_id, "backup_id": manifest.id}},
    )

    phases = _Phases()
    checks: list[Check] = []
    error: BackdrillError | None = None
    info: SandboxInfo | None = None
    verified_at = None
    keep_hint: str | None = None
    sandbox: Sandbox = open_sandbox(
        kind,
        int(manifest.server_version.split(".")[0]),
        cfg,
        allow_newer=options.allow_newer,
        keep=options.keep_sandbox,
    )
    cleanup = "done"
    files = FilesOutcome()
    work_parent = cfg.drill.work_dir
    workdir = tempfile.TemporaryDirectory(
        prefix="backdrill-drill-", dir=str(work_parent) if work_parent else None
    )
    # the sandbox is provisioned in a thread while the dump downloads: the two overlap
    provisioner = ThreadPoolExecutor(1, thread_name_prefix="provision")
    provisioning = provisioner.submit(_provision, sandbox, manifest.database, phases)
    try:
        info, restore_checks, neutralized = _restore(
            ctx, manifest, provisioning, jobs, phases, Path(workdir.name), files
        )
        checks.extend(restore_checks)
        with phases.time("verify"):
            checks.extend(_verify(manifest, info, neutralized))
            check_filestore(info, files)
        checks.extend(files.checks)
        error = files.integrity_error
        verified_at = utcnow()
    except RestoreFailed as exc:
        error = exc
        checks.append(Check("pg_restore", "fail", "\n".join(exc.errors[:20]) or str(exc)))
    except IntegrityError as exc:
        error = exc
        checks.append(Check("checksum", "fail", str(exc)))
    except BackdrillError as exc:
        error = exc
        checks.append(Check("drill", "fail", str(exc)))
    finally:
        workdir.cleanup()
        provisioner.shutdown(wait=True)  # a sandbox being made is finished, then torn down
        if info is None and provisioning.done() and provisioning.exception() is None:
            info = provisioning.result()
        if options.keep_sandbox:
            keep_hint = sandbox.connect_hint()
            cleanup = "kept (--keep-sandbox)"
        else:
            try:
                sandbox.teardown()
            except BackdrillError as exc:
                cleanup = f"failed: {exc}"

    rpo = evaluate_rpo(
        drill_start=drill_start,
        backup_created_at=manifest.created_at,
        target_seconds=cfg.targets.rpo_hours * 3600,
        history=history,
        window_days=cfg.retention.days,
    )
    end = verified_at or utcnow()
    rto = evaluate_rto(
        drill_start=drill_start,
        verified_at=end,
        target_seconds=cfg.targets.rto_hours * 3600,
        phases=phases.seconds,
    )
    rto_met = rto.met and verified_at is not None
    checks.append(_objective_check("rpo", rpo.achieved_seconds, rpo.target_seconds, rpo.met))
    checks.append(_objective_check("rto", rto.achieved_seconds, rto.target_seconds, rto_met))
    files_fields = files.report_fields(drill_start)
    if files_fields is not None:
        files_rpo = float(str(files_fields["rpo_seconds"]))
        target = cfg.targets.rpo_hours * 3600
        checks.append(_objective_check("files_rpo", files_rpo, target, files_rpo <= target))
    passed = error is None and not any(c.failed for c in checks)
    report = _build_report(
        ctx,
        drill_id,
        drill_start,
        manifest,
        info,
        checks,
        rpo,
        rto,
        rto_met,
        "pass" if passed else "fail",
        cleanup,
        error,
        files_fields,
    )
    report_dir = _write_evidence(ctx, report, options.report_dir or cfg.drill.report_dir)
    if isinstance(error, IntegrityError):
        code = error.exit_code
    elif error is not None and error.exit_code == 5 and info is None:
        code = 5
    else:
        code = 0 if passed else 1
    return DrillOutcome(report, report_dir, code, keep_hint)


def _objective_check(name: str, achieved: float, target: float, met: bool) -> Check:
    detail = f"achieved {human_duration(achieved)}, target {human_duration(target)}"
    return Check(name, "pass" if met else "fail", detail)


def _build_report(
    ctx: RunContext,
    drill_id: str,
    started: object,
    manifest: DbManifest,
    info: SandboxInfo | None,
    checks: list[Check],
    rpo: RpoResult,
    rto: RtoResult,
    rto_met: bool,
    result: str,
    cleanup: str,
    error: BackdrillError | None,
    files_snapshot: dict[str, object] | None,
) -> DrillReport:
    sandbox = None
    if info is not None:
        sandbox = SandboxRef(
            kind=info.kind,
            server_version=info.server_version,
            address=info.address,
            segregated=info.segregated,
            tuned_for_restore=info.tuned_for_restore,
            durability=(
                "disposable: fsync, synchronous_commit and full_page_writes off, "
                "wal_level minimal (tuned for restore speed)"
                if info.tuned_for_restore
                else "server defaults"
            ),
            newer_major=info.newer_major,
        )
    return DrillReport.model_validate(
        {
            "drill_id": drill_id,
            "run_id": ctx.run_id,
            "host": ctx.host,
            "operator": operator_name(),
            "backdrill_version": __version__,
            "started_at": started,
            "finished_at": utcnow(),
            "backup": BackupRef(
                id=manifest.id,
                database=manifest.database,
                created_at=manifest.created_at,
                sha256=manifest.sha256,
                size_bytes=manifest.stored_size,
                raw_size_bytes=manifest.raw_size,
                tables=len(manifest.tables),
                rows=sum(t.rows for t in manifest.tables),
            ),
            "files_snapshot": files_snapshot,
            "sandbox": sandbox,
            "rpo": Rpo(**vars(rpo)),
            "rto": Rto(
                achieved_seconds=round(rto.achieved_seconds, 3),
                target_seconds=rto.target_seconds,
                met=rto_met,
                phases=rto.phases,
            ),
            "checks": [CheckEntry(name=c.name, status=c.status, detail=c.detail) for c in checks],
            "result": result,
            "cleanup": cleanup,
            "error": str(error) if error else None,
            "previous_report_sha256": None,
        }
    )


def _write_evidence(ctx: RunContext, report: DrillReport, report_root: Path) -> Path:
    """Chain the report to the newest stored one, render it, seal report.json with the
    digests of report.md and report.html (and sign it with drill.signing_key_file), and
    write the three locally and to storage (under object lock where the bucket has it)."""
    cfg = ctx.config
    evidence = load_evidence(ctx.storage)
    latest = evidence.latest()
    key = load_signing_key(cfg.drill.signing_key_file) if cfg.drill.signing_key_file else None
    report = with_report_digest(
        report.model_copy(
            update={
                "previous_report_sha256": latest.sha256 if latest else None,
                "signing_public_key": public_key_text(key.public_key()) if key else None,
            }
        )
    )
    files = {
        "report.md": render_markdown(report).encode(),
        "report.html": render_html(report, evidence.parsed()).encode(),
    }
    signer = functools.partial(sign, key) if key is not None else None
    files["report.json"] = seal(report, rendered=files, signer=signer)
    target = report_root / report.drill_id
    target.mkdir(parents=True, exist_ok=True)
    for name in REPORT_NAMES:
        (target / name).write_bytes(files[name])
    lock = evidence_lock(
        cfg.drill.evidence_lock, ctx.storage.capabilities(), cfg.retention.days, utcnow()
    )
    log.info("%s", lock.note)  # once per drill: whether the history can be rewritten
    store_report_files(ctx.storage, report.drill_id, files, lock)
    log.info(
        "drill %s %s; evidence in %s and %s",
        report.drill_id,
        report.result,
        target,
        report_key(report.drill_id, ""),
        extra={"fields": {"drill_id": report.drill_id, "result": report.result}},
    )
    return target
