"""``report.json`` (docs/format.md): schema-versioned; rename no key, add freely."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backdrill.errors import IntegrityError

REPORT_SCHEMA_VERSION = 1

#: What a PASS proves and what it does not: the one text of the Markdown and HTML
#: reports (and of the README's section on drills).
DRILL_PROVES = (
    "What a PASS proves: the backup's objects were read back from the repository with "
    "their sha256; pg_restore restored the dump into a throwaway PostgreSQL without an "
    "error; every table's rows were counted and equal what was dumped and, when content "
    "digests are on, so is their content; for Odoo, the installed modules, the users and "
    "database.uuid match, the copy was neutralized, and, with a filestore configured, "
    "every attachment referenced by ir_attachment has its file with its sha1; the RPO and "
    "RTO targets were met. What it does not prove: Odoo itself was not started and the "
    "application was not exercised (no login, no page, no module upgrade); files of the "
    "filestore that no ir_attachment references were not checked; the restore ran in a "
    "sandbox, so the production server's configuration, roles and capacity were not tested."
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class BackupRef(_Model):
    id: str
    database: str
    created_at: datetime
    sha256: str
    size_bytes: int
    raw_size_bytes: int | None = None
    tables: int | None = None
    rows: int | None = None


class FilesRef(_Model):
    id: str | None = None
    created_at: datetime | None = None
    source_name: str | None = None
    #: False when no snapshot was taken after the backup and an older one stood in
    after_backup: bool | None = None
    files: int | None = None
    size_bytes: int | None = None
    #: the filestore's achieved RPO: drill start - snapshot created_at
    rpo_seconds: float | None = None


class SandboxRef(_Model):
    kind: str
    server_version: str
    address: str
    segregated: str = ""
    tuned_for_restore: bool = False
    durability: str = ""
    newer_major: bool = False


class Rpo(_Model):
    achieved_seconds: float
    target_seconds: float
    met: bool
    worst_gap_seconds: float
    worst_gap_met: bool = True
    worst_gap_after: str | None = None
    worst_gap_before: str | None = None
    window_days: int = 30


class Rto(_Model):
    achieved_seconds: float
    target_seconds: float
    met: bool
    phases: dict[str, float]


class CheckEntry(_Model):
    name: str
    status: Literal["pass", "fail", "skip"]
    detail: str


class DrillReport(_Model):
    schema_version: int = REPORT_SCHEMA_VERSION
    drill_id: str
    run_id: str
    host: str
    operator: str
    backdrill_version: str
    started_at: datetime
    finished_at: datetime
    backup: BackupRef | None
    files_snapshot: FilesRef | None = None
    sandbox: SandboxRef | None
    rpo: Rpo | None
    rto: Rto | None
    checks: list[CheckEntry] = Field(default_factory=list)
    result: Literal["pass", "fail"]
    cleanup: str
    error: str | None = None
    previous_report_sha256: str | None
    content_sha256: str | None = None

    def document(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())  # type: ignore[no-any-return]


def content_digest(doc: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a report without its own ``content_sha256``."""
    body = {k: v for k, v in doc.items() if k != "content_sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def seal(report: DrillReport) -> bytes:
    """The bytes of ``report.json``: pretty JSON with its content digest filled in."""
    doc = report.document()
    doc["content_sha256"] = content_digest(doc)
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


def parse_report(data: bytes, where: str) -> DrillReport:
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"report {where} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != REPORT_SCHEMA_VERSION:
        raise IntegrityError(f"report {where} has an unknown schema_version")
    try:
        return DrillReport.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = " -> ".join(str(p) for p in err["loc"])
        raise IntegrityError(f"report {where}: {loc}: {err['msg']}") from None
