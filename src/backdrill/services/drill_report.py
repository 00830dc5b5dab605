"""The end of a drill: its objective checks, its report, and the evidence written to
``--report-dir`` and to ``evidence/<drill_id>/`` in the repository, chained to the
report before it."""

from __future__ import annotations

import functools
import getpass
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from backdrill import __version__
from backdrill.odoo.checks import Check
from backdrill.policy.objectives import RpoResult, RtoResult
from backdrill.report.evidence import (
    REPORT_NAMES,
    evidence_lock,
    load_evidence,
    store_report_files,
)
from backdrill.report.model import (
    BackupRef,
    CheckEntry,
    DrillReport,
    FilesRef,
    Rpo,
    Rto,
    SandboxRef,
    seal,
    with_report_digest,
)
from backdrill.report.render import render_html, render_markdown
from backdrill.report.signing import load_signing_key, public_key_text, sign
from backdrill.repository.layout import report_key
from backdrill.repository.manifest import DbManifest
from backdrill.runtime.errors import BackdrillError, GoalNotMet
from backdrill.runtime.timeutil import human_duration, utcnow
from backdrill.sandbox import SandboxInfo
from backdrill.services.context import RunContext

log = logging.getLogger(__name__)

#: drills of several databases at once (``drill run --all --parallel``) write their
#: evidence one at a time, so that each report links to the one stored before it
_EVIDENCE_WRITE = threading.Lock()


def operator_name() -> str:
    override = os.environ.get("BACKDRILL_OPERATOR")
    if override:
        return override
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def objective_check(name: str, achieved: float, target: float, met: bool) -> Check:
    detail = f"achieved {human_duration(achieved)}, target {human_duration(target)}"
    return Check(name, "pass" if met else "fail", detail)


@dataclass(frozen=True)
class DrillFindings:
    """What a drill found, as its report states it."""

    checks: list[Check]
    rpo: RpoResult
    rto: RtoResult
    rto_met: bool
    passed: bool
    cleanup: str
    error: BackdrillError | None
    files: FilesRef | None


def _sandbox_ref(info: SandboxInfo | None) -> SandboxRef | None:
    if info is None:
        return None
    return SandboxRef(
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


def build_report(
    ctx: RunContext,
    drill_id: str,
    started: datetime,
    manifest: DbManifest,
    info: SandboxInfo | None,
    found: DrillFindings,
) -> DrillReport:
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
                source=manifest.source,
                database=manifest.database,
                created_at=manifest.created_at,
                sha256=manifest.sha256,
                size_bytes=manifest.stored_size,
                raw_size_bytes=manifest.raw_size,
                tables=len(manifest.tables),
                rows=sum(t.rows for t in manifest.tables),
            ),
            "files_snapshot": found.files,
            "sandbox": _sandbox_ref(info),
            "rpo": Rpo(**vars(found.rpo)),
            "rto": Rto(
                achieved_seconds=round(found.rto.achieved_seconds, 3),
                target_seconds=found.rto.target_seconds,
                met=found.rto_met,
                phases=found.rto.phases,
            ),
            "checks": [
                CheckEntry(name=c.name, status=c.status, detail=c.detail) for c in found.checks
            ],
            "result": "pass" if found.passed else "fail",
            "cleanup": found.cleanup,
            "error": str(found.error) if found.error else None,
            "previous_report_sha256": None,
        }
    )


def write_evidence(ctx: RunContext, report: DrillReport, report_root: Path) -> Path:
    """Chain the report to the newest stored one, render it, seal report.json with the
    digests of report.md and report.html (and sign it with drill.signing_key_file), and
    write the three locally and to storage (under object lock where the bucket has it)."""
    with _EVIDENCE_WRITE:
        return _write_evidence(ctx, report, report_root)


def _write_evidence(ctx: RunContext, report: DrillReport, report_root: Path) -> Path:
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
    local_error: OSError | None = None
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name in REPORT_NAMES:
            (target / name).write_bytes(files[name])
    except OSError as exc:  # a full or read-only disk: the repository still gets it
        local_error = exc
    lock = evidence_lock(
        cfg.drill.evidence_lock, ctx.storage.capabilities(), cfg.retention.days, utcnow()
    )
    log.info("%s", lock.note)  # once per drill: whether the history can be rewritten
    store_report_files(ctx.storage, report.drill_id, files, lock)
    if local_error is not None:
        reason = local_error.strerror or type(local_error).__name__
        raise GoalNotMet(
            f"drill {report.drill_id} {report.result}, but its report could not be written "
            f"to {target}: {reason}; it is stored as {report_key(report.drill_id)}"
        )
    log.info(
        "drill %s %s; evidence in %s and %s",
        report.drill_id,
        report.result,
        target,
        report_key(report.drill_id, ""),
        extra={"fields": {"drill_id": report.drill_id, "result": report.result}},
    )
    return target
