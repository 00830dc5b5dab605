"""Evidence in the repository: ``<prefix>/evidence/<drill_id>/report.{json,md,html}``,
each report chained to the one before by ``previous_report_sha256``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from backdrill.documents import read_document
from backdrill.errors import BackdrillError
from backdrill.limits import MAX_REPORT_BYTES
from backdrill.report.model import DrillReport, content_digest, parse_report
from backdrill.storage import Storage

EVIDENCE_ROOT = "evidence/"
#: written in this order: report.json last, it is the link of the chain
REPORT_NAMES = ("report.md", "report.html", "report.json")


def report_key(drill_id: str, name: str = "report.json") -> str:
    return f"{EVIDENCE_ROOT}{drill_id}/{name}"


@dataclass(frozen=True)
class StoredReport:
    drill_id: str
    raw: bytes
    report: DrillReport | None
    error: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


@dataclass
class ChainProblem:
    drill_id: str
    detail: str


@dataclass
class EvidenceLog:
    reports: list[StoredReport] = field(default_factory=list)

    def latest(self) -> StoredReport | None:
        return self.reports[-1] if self.reports else None

    def parsed(self) -> list[DrillReport]:
        return [r.report for r in self.reports if r.report is not None]


def load_evidence(storage: Storage) -> EvidenceLog:
    """Every stored report.json, oldest first (drill ids sort by time)."""
    keys = sorted(
        info.key
        for info in storage.list_objects(EVIDENCE_ROOT)
        if info.key.endswith("/report.json")
    )
    log = EvidenceLog()
    for key in keys:
        drill_id = key[len(EVIDENCE_ROOT) :].split("/", 1)[0]
        raw = read_document(storage, key, limit=MAX_REPORT_BYTES)
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
            doc = json.loads(stored.raw)
            recorded = doc.get("content_sha256")
            if recorded != content_digest(doc):
                problems.append(
                    ChainProblem(
                        stored.drill_id,
                        "its content does not match its content_sha256 (the report was edited)",
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
