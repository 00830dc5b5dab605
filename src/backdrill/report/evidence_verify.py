"""``drill history --verify`` beyond the chain: the rendered files (report.md,
report.html) against the digests their report.json records, and the Ed25519
signatures. The checks are pure functions over what was read."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from backdrill.report.evidence import ChainProblem, EvidenceLog, StoredReport
from backdrill.report.model import RENDERED_NAMES, signed_message
from backdrill.report.signing import parse_public_key, public_key_text, same_key, signature_holds
from backdrill.repository.layout import report_key
from backdrill.storage import Storage

_CHUNK = 1 << 20


def _shown(value: object) -> str:
    """A recorded digest for a message: outside input, so bounded."""
    text = str(value)
    return text if len(text) <= 64 else f"{text[:64]}… ({len(text)} characters)"


def _file_sha256(storage: Storage, key: str) -> str:
    digest = hashlib.sha256()
    with storage.open_reader(key) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def rendered_digests(storage: Storage, log: EvidenceLog) -> dict[tuple[str, str], str]:
    """sha256 of every stored report.md and report.html (streamed: memory stays bounded
    whatever their size), keyed by (drill id, file name); a missing file is absent."""
    digests: dict[tuple[str, str], str] = {}
    for stored in log.reports:
        for name in RENDERED_NAMES:
            key = report_key(stored.drill_id, name)
            if key in log.keys:
                digests[(stored.drill_id, name)] = _file_sha256(storage, key)
    return digests


def verify_rendered(
    reports: Sequence[StoredReport], digests: Mapping[tuple[str, str], str]
) -> tuple[list[ChainProblem], list[str]]:
    """Pure: each rendered file against the digest its report.json records. Returns the
    problems, and the drills whose report.json predates recorded digests (not checked:
    such a report is held by the chain alone)."""
    problems: list[ChainProblem] = []
    unchecked: list[str] = []
    for stored in reports:
        doc = stored.document()
        if doc is None:
            continue  # unreadable: verify_chain reports it
        recorded = doc.get("rendered")
        if recorded is None:
            unchecked.append(stored.drill_id)
            continue
        if not isinstance(recorded, dict):
            recorded = {}
        for name in RENDERED_NAMES:
            actual = digests.get((stored.drill_id, name))
            if actual is None:
                problems.append(ChainProblem(stored.drill_id, "is missing", name))
            elif recorded.get(name) != actual:
                problems.append(
                    ChainProblem(
                        stored.drill_id,
                        f"does not match the sha256 its report.json records ({actual} is "
                        f"not {_shown(recorded.get(name))}): the file was edited or replaced",
                        name,
                    )
                )
    return problems, unchecked


def verify_signatures(
    reports: Sequence[StoredReport], trusted: Ed25519PublicKey | None
) -> list[ChainProblem]:
    """Pure: with ``trusted``, every report must carry a signature of that key that
    holds; without, the signatures present must hold with the key each report names
    (which catches an edit, not a forger who signs with a key of their own)."""
    problems: list[ChainProblem] = []
    for stored in reports:
        doc = stored.document()
        if doc is None:
            if trusted is not None:
                problems.append(ChainProblem(stored.drill_id, "is unreadable: no signature"))
            continue
        signature = doc.get("signature")
        named = doc.get("signing_public_key")
        if signature is None:
            if trusted is not None:
                problems.append(ChainProblem(stored.drill_id, "is not signed"))
            continue
        key = parse_public_key(named) if isinstance(named, str) else None
        if trusted is not None:
            if key is None or not same_key(key, trusted):
                problems.append(
                    ChainProblem(
                        stored.drill_id,
                        f"is signed by another key, not {public_key_text(trusted)}",
                    )
                )
                continue
            key = trusted
        if key is None:
            problems.append(ChainProblem(stored.drill_id, "names no valid signing_public_key"))
        elif not isinstance(signature, str) or not signature_holds(
            key, signed_message(doc), signature
        ):
            problems.append(
                ChainProblem(
                    stored.drill_id, "its signature does not verify (the report was edited)"
                )
            )
    return problems


def verify_single_versions(
    log: EvidenceLog, counts: Mapping[str, int] | None
) -> list[ChainProblem]:
    """Pure: on a store that keeps versions (object lock), each evidence file was
    written once; a second version (or a delete marker) over it is a rewrite, whatever
    its content: the original stays under retention for the auditor to compare."""
    if counts is None:
        return []
    problems: list[ChainProblem] = []
    for stored in log.reports:
        for name in (*RENDERED_NAMES, "report.json"):
            n = counts.get(report_key(stored.drill_id, name), 0)
            if n > 1:
                problems.append(
                    ChainProblem(
                        stored.drill_id,
                        f"has {n} versions: it was rewritten or deleted after the drill "
                        "(the first version is the original)",
                        name,
                    )
                )
    return problems
