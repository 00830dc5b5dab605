"""Evidence in the repository: ``<prefix>/evidence/<drill_id>/report.{json,md,html}``,
each report chained to the one before by ``previous_report_sha256``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from backdrill.report.model import DrillReport, content_digest, parse_report, report_digest
from backdrill.repository.documents import read_document
from backdrill.repository.layout import EVIDENCE_ROOT, REPORT_JSON, report_key, split_report_key
from backdrill.repository.limits import MAX_REPORT_BYTES
from backdrill.runtime.errors import BackdrillError, IntegrityError
from backdrill.storage import Storage
from backdrill.storage.base import Capabilities, Retention

#: written in this order: report.json last, it is the link of the chain
REPORT_NAMES = ("report.md", "report.html", "report.json")


@dataclass(frozen=True)
class StoredReport:
    drill_id: str
    raw: bytes
    report: DrillReport | None
    error: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    def document(self) -> dict[str, Any] | None:
        """The raw JSON object as stored (the digests are over it, not the model)."""
        if self.report is None:
            return None
        doc = json.loads(self.raw)
        return doc if isinstance(doc, dict) else None


@dataclass
class ChainProblem:
    drill_id: str
    detail: str
    #: the evidence file that fails
    file: str = "report.json"


@dataclass
class EvidenceLog:
    reports: list[StoredReport] = field(default_factory=list)
    #: every key under evidence/ (to tell a missing report.md from a present one)
    keys: set[str] = field(default_factory=set)

    def latest(self) -> StoredReport | None:
        return self.reports[-1] if self.reports else None

    def parsed(self) -> list[DrillReport]:
        return [r.report for r in self.reports if r.report is not None]


def load_evidence(storage: Storage) -> EvidenceLog:
    """Every stored report.json, oldest first (drill ids sort by time)."""
    listing = {info.key: info.size for info in storage.list_objects(EVIDENCE_ROOT)}
    log = EvidenceLog(keys=set(listing))
    for key in sorted(listing):
        split = split_report_key(key)
        if split is None or split[1] != REPORT_JSON:
            continue
        drill_id = split[0]
        try:  # bounded: an oversized or bomb report is named, the others still read
            raw = read_document(storage, key, limit=MAX_REPORT_BYTES)
        except IntegrityError as exc:
            log.reports.append(StoredReport(drill_id, b"", None, str(exc)))
            continue
        try:
            log.reports.append(StoredReport(drill_id, raw, parse_report(raw, key)))
        except BackdrillError as exc:
            log.reports.append(StoredReport(drill_id, raw, None, str(exc)))
    return log


def verify_chain(reports: Sequence[StoredReport]) -> list[ChainProblem]:
    """Pure: every report's own digest holds and its link names the report before it."""
    problems: list[ChainProblem] = []
    previous: StoredReport | None = None
    for stored in reports:
        if stored.report is None:
            problems.append(ChainProblem(stored.drill_id, stored.error or "unreadable"))
        else:
            doc = stored.document() or {}
            recorded = doc.get("content_sha256")
            if recorded != content_digest(doc):
                problems.append(
                    ChainProblem(
                        stored.drill_id,
                        "its content does not match its content_sha256 (the report was edited)",
                    )
                )
            shown = doc.get("report_sha256")
            if shown is not None and shown != report_digest(doc):
                problems.append(
                    ChainProblem(
                        stored.drill_id,
                        "its content does not match its report_sha256 (the report was edited)",
                    )
                )
            expected = previous.sha256 if previous is not None else None
            link = stored.report.previous_report_sha256
            if link != expected:
                before = previous.drill_id if previous is not None else "none"
                problems.append(
                    ChainProblem(
                        stored.drill_id,
                        f"previous_report_sha256 {link} does not match the report before it "
                        f"({before}: {expected}); that report was edited, removed or inserted",
                    )
                )
        previous = stored
    return problems


@dataclass(frozen=True)
class LockDecision:
    """How evidence is written: with this retention, or without one (and why)."""

    retention: Retention | None
    note: str


def evidence_lock(
    setting: Literal["governance", "compliance", "off"],
    capabilities: Capabilities,
    days: int,
    now: datetime,
) -> LockDecision:
    """Pure: ``drill.evidence_lock`` against what the repository declares it can do."""
    if setting == "off":
        return LockDecision(None, "evidence object lock is off (drill.evidence_lock: off)")
    if not capabilities.object_lock:
        return LockDecision(
            None,
            f"object lock is not available ({capabilities.detail}); evidence is written "
            "without retention",
        )
    mode: Literal["GOVERNANCE", "COMPLIANCE"] = (
        "COMPLIANCE" if setting == "compliance" else "GOVERNANCE"
    )
    until = now + timedelta(days=days)
    return LockDecision(
        Retention(mode, until),
        f"evidence is written under object lock: {mode} retention for {days} days",
    )


def store_report_files(
    storage: Storage, drill_id: str, files: Mapping[str, bytes], lock: LockDecision
) -> None:
    """Write a drill's reports to the repository, report.json last."""
    for name in REPORT_NAMES:
        storage.put_bytes(report_key(drill_id, name), files[name], retention=lock.retention)
