"""``report.json`` (docs/format.md): schema-versioned; rename no key, add freely."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backdrill.repository.documents import validated
from backdrill.runtime.errors import IntegrityError

REPORT_SCHEMA_VERSION = 1

#: What a PASS proves and what it does not: the one text of the Markdown and HTML
#: reports (and of the README's section on drills).
DRILL_PROVES = (
    "What a PASS proves: the backup's objects were read back from the repository with "
    "their sha256; the dump was restored into a throwaway PostgreSQL the way restore db "
    "restores it (roles, owners, grants, policies, the database's encoding, locale, "
    "settings and comment) without an error; every table's rows were counted and equal "
    "what was dumped and, when content digests are on, so is their content, and every "
    "large object's and sequence's; for Odoo, the installed modules, the users and "
    "database.uuid match, the copy was neutralized, and, with a filestore configured, "
    "every attachment referenced by ir_attachment has its file with its sha1; the RPO and "
    "RTO targets were met. What it does not prove: Odoo itself was not started and the "
    "application was not exercised (no login, no page, no module upgrade); files of the "
    "filestore that no ir_attachment references were not checked; the restore ran in a "
    "sandbox, so the production server's configuration (postgresql.conf, pg_hba.conf, "
    "extensions installed on it), role passwords and capacity were not tested."
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class BackupRef(_Model):
    id: str
    #: the PostgreSQL source (config ``sources:``) the backup belongs to
    source: str = "default"
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
    #: base64 of the Ed25519 public key whose private half signed this report
    signing_public_key: str | None = None
    #: the seal (docs/evidence.md): the digest of everything above,
    #: shown in report.md and report.html; then their digests; the signature of all that;
    #: and last the digest of the whole document
    report_sha256: str | None = None
    rendered: dict[str, str] | None = None
    signature: str | None = None
    content_sha256: str | None = None

    def document(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())  # type: ignore[no-any-return]


#: the fields that seal a report, filled in this order after its content is final
SEAL_FIELDS = ("report_sha256", "rendered", "signature", "content_sha256")
#: the files rendered from a report whose digests its report.json records
RENDERED_NAMES = ("report.md", "report.html")


def _canonical(doc: dict[str, Any], without: Collection[str]) -> bytes:
    body = {k: v for k, v in doc.items() if k not in without}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_digest(doc: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a report without its own ``content_sha256``."""
    return hashlib.sha256(_canonical(doc, ("content_sha256",))).hexdigest()


def report_digest(doc: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a report without any seal field: the digest the
    rendered pages show (they cannot show one that covers their own bytes)."""
    return hashlib.sha256(_canonical(doc, SEAL_FIELDS)).hexdigest()


def signed_message(doc: dict[str, Any]) -> bytes:
    """What the signature signs: the canonical JSON without ``signature`` and
    ``content_sha256`` (so it covers ``report_sha256`` and the rendered files' digests)."""
    return _canonical(doc, ("signature", "content_sha256"))


def with_report_digest(report: DrillReport) -> DrillReport:
    """The report with ``report_sha256`` filled in: call it when the content is final,
    before rendering, so the pages show the digest."""
    return report.model_copy(update={"report_sha256": report_digest(report.document())})


def seal(
    report: DrillReport,
    rendered: Mapping[str, bytes] | None = None,
    signer: Callable[[bytes], str] | None = None,
) -> bytes:
    """The bytes of ``report.json``: pretty JSON with the sha256 of each ``rendered``
    file, the ``signer``'s signature, and its content digest filled in."""
    doc = report.document()
    doc["report_sha256"] = report_digest(doc)
    if rendered is not None:
        doc["rendered"] = {n: hashlib.sha256(data).hexdigest() for n, data in rendered.items()}
    if signer is not None:
        doc["signature"] = signer(signed_message(doc))
    doc["content_sha256"] = content_digest(doc)
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


def parse_report(data: bytes, where: str) -> DrillReport:
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"report {where} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != REPORT_SCHEMA_VERSION:
        raise IntegrityError(f"report {where} has an unknown schema_version")
    return validated(DrillReport, doc, kind="report", where=where)
