"""The checks of a drill's restored copy: the dump's checksum, the neutralization of an
Odoo copy, and the copy's database properties and Odoo facts against the manifest."""

from __future__ import annotations

import logging

from backdrill.odoo.checks import Check, check_neutralized, compare_odoo
from backdrill.odoo.facts import (
    Neutralization,
    NeutralizationFailed,
    is_odoo,
    neutral_state,
    neutralize,
    odoo_facts,
)
from backdrill.pg.database_properties import compare_properties, read_properties
from backdrill.repository.manifest import DbManifest
from backdrill.sandbox import SandboxInfo

log = logging.getLogger(__name__)


def verify_copy(
    manifest: DbManifest, info: SandboxInfo, neutralized: Neutralization | None
) -> list[Check]:
    """The checks of the neutralized copy: database properties, Odoo facts and the
    neutralization itself (its content was proven before, by verify_content)."""
    with info.params.connect() as conn:
        checks = [compare_properties(manifest.database_properties, read_properties(conn))]
        checks.extend(compare_odoo(manifest.odoo, odoo_facts(conn)))
        if neutralized is not None:  # a neutralization that failed is a check already
            try:
                checks.append(check_neutralized(neutralized, neutral_state(conn)))
            except NeutralizationFailed as exc:
                checks.append(Check("odoo_neutralized", "fail", str(exc)))
    return checks


def checksum_check(manifest: DbManifest) -> Check:
    count = len(manifest.stored_objects())
    what = f"{count} objects" if count > 1 else "the dump"
    return Check(
        "checksum",
        "pass",
        f"sha256 {manifest.sha256} and size {manifest.stored_size} bytes of {what} "
        "match the manifest",
    )


def neutralize_if_odoo(
    info: SandboxInfo, manifest: DbManifest
) -> tuple[Neutralization | None, Check | None]:
    """Neutralize an Odoo copy: what it changed, or the failed check (the copy then
    stays as restored)."""
    with info.params.connect() as conn:
        if manifest.odoo is None and not is_odoo(conn):
            return None, None
        try:
            done = neutralize(conn)
        except NeutralizationFailed as exc:
            return None, Check("odoo_neutralized", "fail", str(exc))
    log.info("restored copy neutralized: %s", done.describe())
    return done, None
