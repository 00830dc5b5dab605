"""Drill checks: each a name, a status (pass/fail/skip) and a detail. Pure comparisons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from backdrill.odoo.facts import Neutralization, NeutralState, OdooFacts

Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def compare_odoo(expected: OdooFacts | None, actual: OdooFacts | None) -> list[Check]:
    """Installed modules equal, users and ``database.uuid`` present and equal."""
    if expected is None:
        return [Check("odoo", "skip", "not an Odoo database")]
    if actual is None:
        return [Check("odoo", "fail", "the restored database has no Odoo tables")]
    checks: list[Check] = []
    want, got = set(expected.installed_modules), set(actual.installed_modules)
    if want == got:
        checks.append(Check("odoo_modules", "pass", f"{len(want)} installed modules match"))
    else:
        diff = sorted(want ^ got)
        checks.append(Check("odoo_modules", "fail", f"installed modules differ: {diff[:20]}"))
    if actual.users > 0 and actual.users == expected.users:
        checks.append(Check("odoo_users", "pass", f"{actual.users} res_users rows"))
    else:
        checks.append(
            Check("odoo_users", "fail", f"res_users: expected {expected.users}, got {actual.users}")
        )
    if actual.database_uuid and actual.database_uuid == expected.database_uuid:
        checks.append(Check("odoo_database_uuid", "pass", f"database.uuid {actual.database_uuid}"))
    else:
        checks.append(
            Check(
                "odoo_database_uuid",
                "fail",
                f"database.uuid expected {expected.database_uuid}, got {actual.database_uuid}",
            )
        )
    return checks


def check_neutralized(done: Neutralization, state: NeutralState) -> Check:
    """What the neutralization did, read back: ``database.is_neutralized`` true and no
    active mail server but the dummy one."""
    marked = state.marker is not None and state.marker.strip().lower() in ("true", "1")
    problems = []
    if not marked:
        problems.append(f"database.is_neutralized is {state.marker!r}, not true")
    if state.live_mail_servers is None:
        problems.append("the active mail servers cannot be read (no ir_mail_server table)")
    elif state.live_mail_servers:
        problems.append(f"{state.live_mail_servers} active mail server(s) with a real host")
    if problems:
        return Check(
            "odoo_neutralized",
            "fail",
            "the restored copy is not neutralized: " + ("; ".join(problems)),
        )
    return Check(
        "odoo_neutralized",
        "pass",
        f"{done.describe()}; read back: database.is_neutralized = true, no active real mail server",
    )
