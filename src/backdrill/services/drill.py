"""``drill run``: restore the latest backup into a throwaway PostgreSQL, verify it
against what was dumped, measure RPO and RTO against the targets, and write chained
evidence reports."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg

from backdrill.config.sources import retention_of, targets_of
from backdrill.odoo.checks import Check
from backdrill.pg.command import terminate_running
from backdrill.pg.connection import first_line
from backdrill.pg.database_properties import tablespaces_check
from backdrill.pg.restore import RestoreFailed, default_jobs
from backdrill.policy.objectives import evaluate_rpo, evaluate_rto
from backdrill.report.model import (
    DrillReport,
)
from backdrill.repository.manifest import DbManifest
from backdrill.runtime.errors import (
    BackdrillError,
    ExternalServiceError,
    GoalNotMet,
    IntegrityError,
    PostgresError,
)
from backdrill.runtime.interrupts import raise_if_received, received, shielded
from backdrill.runtime.timeutil import new_id, utcnow
from backdrill.sandbox import Sandbox, SandboxInfo
from backdrill.services.context import RunContext
from backdrill.services.drill_checks import checksum_check, neutralize_if_odoo, verify_copy
from backdrill.services.drill_files import FilesRestore, check_filestore, restore_filestore
from backdrill.services.drill_report import (
    DrillFindings,
    build_report,
    objective_check,
    write_evidence,
)
from backdrill.services.drill_select import ready_sandbox, select_backup_to_drill
from backdrill.services.fetch import fetch_backup
from backdrill.services.restore_pipeline import PipelineOptions, restore_backup
from backdrill.services.verify_content import verify_content

log = logging.getLogger(__name__)
#: how often a sandbox still starting after a signal is told again to stop
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class DrillOptions:
    backup: str = "latest"
    database: str | None = None
    #: the PostgreSQL source (config ``sources:``); None: any
    source: str | None = None
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
    #: the phase an exception left first, to name where a drill failed
    failed_in: str | None = None

    @contextlib.contextmanager
    def time(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        log.info("drill phase %s started", name, extra={"fields": {"phase": name}})
        try:
            yield
        except Exception:
            self.failed_in = self.failed_in or name
            raise
        finally:
            spent = time.monotonic() - start  # a phase may come back: its parts add up
            self.seconds[name] = round(self.seconds.get(name, 0.0) + spent, 3)


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
) -> tuple[SandboxInfo, list[Check]]:
    """Download (while the sandbox is provisioned), verify and restore: the sandbox and
    the checks of these phases."""
    with phases.time("download"):
        dump = Path(fetch_backup(ctx.storage, manifest, workdir, ctx.reporter, ctx.config))
    info = _sandbox_ready(provisioning)
    checks = [checksum_check(manifest)]
    with phases.time("restore"):
        # the same restore as `restore db`, without tablespaces; a backup that recorded no
        # roles (made before they were) is restored without owners and grants, as it was
        options = PipelineOptions(
            jobs=jobs, no_owner=manifest.roles is None, bin_dir=ctx.config.postgres.bin_dir
        )
        restore_backup(manifest, dump, info.admin, info.params.dbname, options, ctx.reporter)
        shutil.rmtree(dump) if dump.is_dir() else dump.unlink()
        checks.append(Check("pg_restore", "pass", f"no errors ({jobs} parallel jobs)"))
        checks.append(tablespaces_check(manifest.database_properties))
    return info, checks


def run_drill(ctx: RunContext, options: DrillOptions) -> DrillOutcome:
    """Select the backup, then drill it: from there on, whatever goes wrong ends in a
    written report (a failed check or an error), except an interrupt, which cleans up
    and propagates."""
    return record_drill(ctx, options, drill_unrecorded(ctx, options))


@dataclass(frozen=True)
class UnrecordedDrill:
    """A drill done, its report not yet in the evidence: drills run in parallel
    (``drill run --all --parallel``) are recorded afterwards in their ids' order, the
    order of the evidence chain."""

    report: DrillReport
    exit_code: int
    keep_hint: str | None


def record_drill(ctx: RunContext, options: DrillOptions, done: UnrecordedDrill) -> DrillOutcome:
    """Write the report (locally and chained in the evidence)."""
    root = options.report_dir or ctx.config.drill.report_dir
    report_dir = write_evidence(ctx, done.report, root)
    return DrillOutcome(done.report, report_dir, done.exit_code, done.keep_hint)


def drill_unrecorded(ctx: RunContext, options: DrillOptions) -> UnrecordedDrill:
    """The drill itself: everything but writing its report. Selects the backup and
    checks that the sandbox can start (else an exception: the drill could not start,
    and no report is written)."""
    drill_start = utcnow()
    manifest, history = select_backup_to_drill(ctx, options)
    kind = options.sandbox or ctx.config.drill.sandbox
    sandbox = ready_sandbox(ctx, options, manifest, kind)
    drill = _Drill(ctx, options, manifest, new_id(drill_start), drill_start)
    log.info(
        "drill %s of backup %s (%s of source %s) in a %s sandbox",
        drill.drill_id,
        manifest.id,
        manifest.database,
        manifest.source,
        kind,
        extra={
            "fields": {
                "drill_id": drill.drill_id,
                "backup_id": manifest.id,
                "source": manifest.source,
            }
        },
    )
    _run(drill, sandbox)
    raise_if_received()  # a worker thread of `drill run --all`: no report of an interrupt
    report = _conclude(drill, history)
    code = _exit_code(drill.error, report.result == "pass", provisioned=drill.info is not None)
    return UnrecordedDrill(report, code, drill.keep_hint)


@dataclass
class _Drill:
    """One drill, from the backup selected to the sandbox gone: what the report holds."""

    ctx: RunContext
    options: DrillOptions
    manifest: DbManifest
    drill_id: str
    started: datetime
    phases: _Phases = field(default_factory=_Phases)
    checks: list[Check] = field(default_factory=list)
    error: BackdrillError | None = None
    info: SandboxInfo | None = None
    verified_at: datetime | None = None
    cleanup: str = "done"
    keep_hint: str | None = None
    files: FilesRestore = field(default_factory=FilesRestore)

    def fail(self, name: str, error: BackdrillError, detail: str | None = None) -> None:
        self.error = error
        self.checks.append(Check(name, "fail", detail if detail is not None else str(error)))

    def unexpected(self, error: BackdrillError) -> None:
        """A failure no step turned into a check: one error line, and the drill fails."""
        where = self.phases.failed_in
        self.fail("drill", error, f"{where}: {error}" if where else str(error))
        log.error(
            "drill %s failed%s: %s",
            self.drill_id,
            f" in {where}" if where else "",
            error,
            extra={"fields": {"drill_id": self.drill_id, "error": type(error).__name__}},
        )


def _run(drill: _Drill, sandbox: Sandbox) -> None:
    """Provision, download, restore and verify; record every failure in ``drill``;
    always remove the work directory and tear the sandbox down (or keep it)."""
    provisioner = ThreadPoolExecutor(1, thread_name_prefix="provision")
    provisioning: Future[SandboxInfo] | None = None
    workdir: Path | None = None
    try:
        workdir = _make_work_dir(drill.ctx.config.drill.work_dir)
        # the sandbox is provisioned in a thread while the dump downloads: the two overlap
        provisioning = provisioner.submit(
            _provision, sandbox, drill.manifest.database, drill.phases
        )
        _restore_and_verify(drill, provisioning, workdir)
    except RestoreFailed as exc:
        drill.fail("pg_restore", exc, "\n".join(exc.errors[:20]) or str(exc))
    except IntegrityError as exc:
        drill.fail("checksum", exc)
    except BackdrillError as exc:
        drill.fail("drill", exc)
    except psycopg.Error as exc:
        drill.unexpected(PostgresError(f"PostgreSQL error: {first_line(exc)}"))
    except OSError as exc:
        drill.unexpected(GoalNotMet(f"file system error: {_os_error(exc)}"))
    except Exception as exc:  # a bug must still end in the drill's report
        log.debug("unexpected error in drill %s", drill.drill_id, exc_info=True)
        drill.unexpected(GoalNotMet(f"unexpected {type(exc).__name__}: {first_line(exc)}"))
    finally:
        with shielded():  # a signal now is raised once the sandbox is gone
            _remove_work_dir(drill, workdir)
            _stop_provisioning(provisioning)
            provisioner.shutdown(wait=True)  # a sandbox being made is finished, then torn down
            _finish_sandbox(drill, sandbox, provisioning)


def _sandbox_ready(provisioning: Future[SandboxInfo]) -> SandboxInfo:
    """The sandbox, once started. A signal meanwhile is raised here within
    :data:`POLL_SECONDS`, also one left pending because another thread was in a shielded
    clean-up when it came (the shield depth is process-wide): waiting on the start alone
    would then last until the start ends."""
    while not provisioning.done():
        raise_if_received()
        wait([provisioning], timeout=POLL_SECONDS)
    return provisioning.result()


def _stop_provisioning(provisioning: Future[SandboxInfo] | None) -> None:
    """After a signal, a sandbox still starting is not waited for: its ``initdb`` or
    ``pg_ctl start`` is terminated (again, should it have started another since), and
    the start fails and removes what it made; its ``pg_ctl stop`` is left to finish."""
    while provisioning is not None and received() and not provisioning.done():
        terminate_running()
        wait([provisioning], timeout=POLL_SECONDS)


def _restore_and_verify(drill: _Drill, provisioning: Future[SandboxInfo], workdir: Path) -> None:
    """Restore; prove the content as restored (before the neutralization changes the
    Odoo settings it must change); neutralize and restore the filestore; then verify
    the rest. The verify phase's time is the sum of its two parts."""
    cfg = drill.ctx.config
    jobs = drill.options.jobs or default_jobs(cfg.drill.jobs)
    info, restore_checks = _restore(
        drill.ctx, drill.manifest, provisioning, jobs, drill.phases, workdir
    )
    drill.info = info
    drill.checks.extend(restore_checks)
    with drill.phases.time("verify"):
        drill.checks.extend(verify_content(drill.manifest, info.params))
    with drill.phases.time("restore"):
        neutralized, failed = neutralize_if_odoo(info, drill.manifest)
        if failed is not None:
            drill.checks.append(failed)
        drill.files = restore_filestore(drill.ctx, drill.manifest, workdir)
    with drill.phases.time("verify"):
        drill.checks.extend(verify_copy(drill.manifest, info, neutralized))
        attachments = check_filestore(info, drill.files)
    drill.checks.extend([*drill.files.checks, *attachments])
    drill.error = drill.files.integrity_error
    drill.verified_at = utcnow()


def _make_work_dir(parent: Path | None) -> Path:
    return Path(tempfile.mkdtemp(prefix="backdrill-drill-", dir=str(parent) if parent else None))


def _remove_work_dir(drill: _Drill, workdir: Path | None) -> None:
    if workdir is None:
        return
    try:
        shutil.rmtree(workdir)
    except OSError as exc:
        drill.cleanup = f"failed: work directory not removed: {_os_error(exc)}"
        log.warning("drill %s: %s", drill.drill_id, drill.cleanup)


def _finish_sandbox(
    drill: _Drill, sandbox: Sandbox, provisioning: Future[SandboxInfo] | None
) -> None:
    if (
        drill.info is None
        and provisioning is not None
        and provisioning.done()
        and provisioning.exception() is None
    ):
        drill.info = provisioning.result()
    if drill.options.keep_sandbox:
        drill.keep_hint = sandbox.connect_hint()
        drill.cleanup = "kept (--keep-sandbox)"
        return
    try:
        sandbox.teardown()
    except BackdrillError as exc:
        drill.cleanup = f"failed: {exc}"
    except (psycopg.Error, OSError) as exc:
        drill.cleanup = f"failed: {first_line(exc)}"


def _os_error(exc: OSError) -> str:
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return first_line(exc)


def _exit_code(error: BackdrillError | None, passed: bool, *, provisioned: bool) -> int:
    """Integrity 4; an external service that prevented the drill (no sandbox) 5; else 1."""
    if isinstance(error, IntegrityError):
        return error.exit_code
    if isinstance(error, ExternalServiceError) and not provisioned:
        return error.exit_code
    return 0 if passed else 1


def _conclude(drill: _Drill, history: list[tuple[str, datetime]]) -> DrillReport:
    """RPO and RTO against the targets, then the report."""
    cfg, manifest = drill.ctx.config, drill.manifest
    targets = targets_of(cfg, manifest.source)
    rpo = evaluate_rpo(
        drill_start=drill.started,
        backup_created_at=manifest.created_at,
        target_seconds=targets.rpo_hours * 3600,
        history=history,
        window_days=retention_of(cfg, manifest.source).days,
    )
    rto = evaluate_rto(
        drill_start=drill.started,
        verified_at=drill.verified_at or utcnow(),
        target_seconds=targets.rto_hours * 3600,
        phases=drill.phases.seconds,
    )
    rto_met = rto.met and drill.verified_at is not None
    checks = [
        *drill.checks,
        objective_check("rpo", rpo.achieved_seconds, rpo.target_seconds, rpo.met),
        objective_check("rto", rto.achieved_seconds, rto.target_seconds, rto_met),
    ]
    files_rpo = drill.files.rpo_seconds(drill.started)
    if files_rpo is not None:
        target = cfg.targets.rpo_hours * 3600
        checks.append(objective_check("files_rpo", files_rpo, target, files_rpo <= target))
    found = DrillFindings(
        checks=checks,
        rpo=rpo,
        rto=rto,
        rto_met=rto_met,
        passed=drill.error is None and not any(c.failed for c in checks),
        cleanup=drill.cleanup,
        error=drill.error,
        files=drill.files.reference(drill.started),
    )
    return build_report(drill.ctx, drill.drill_id, drill.started, manifest, drill.info, found)
