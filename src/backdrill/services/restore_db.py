"""``restore db --to DSN``: an incident restore that never leaves a half-restored
database under the real name. The dump is restored into a temporary database, checked,
optionally neutralized, and only then renamed into place; an existing database is
renamed aside, never dropped."""

from __future__ import annotations

import logging
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from backdrill.odoo.facts import Neutralization, is_odoo, neutralize
from backdrill.pg.connection import ConnParams, first_line
from backdrill.pg.introspect import user_objects
from backdrill.pg.restore import default_jobs
from backdrill.pg.roles import RoleFacts
from backdrill.policy.objectives import estimate_restore_seconds
from backdrill.report.evidence import load_evidence
from backdrill.repository.catalog import list_db_backups, select_backup
from backdrill.repository.manifest import DbManifest
from backdrill.runtime.errors import IntegrityError, PostgresError, Refused
from backdrill.runtime.interrupts import shielded
from backdrill.runtime.redact import SECRETS
from backdrill.runtime.timeutil import human_duration, utcnow
from backdrill.sandbox.server import params_from_dsn
from backdrill.services.context import RunContext
from backdrill.services.fetch import fetch_backup, readable_manifest
from backdrill.services.restore_pipeline import PipelineOptions, restore_backup
from backdrill.services.verify_content import verify_content

log = logging.getLogger(__name__)

MAX_IDENT = 63


@dataclass(frozen=True)
class TargetState:
    exists: bool
    #: what a user made in it, by kind (pg/introspect.user_objects); empty: nothing
    objects: dict[str, int] = field(default_factory=dict)

    @property
    def holds_objects(self) -> bool:
        return self.exists and bool(self.objects)

    def describe(self) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in self.objects.items())


@dataclass(frozen=True)
class RestorePlan:
    manifest: DbManifest
    target: ConnParams
    state: TargetState
    jobs: int
    estimate: str | None

    def describe(self) -> str:
        m = self.manifest
        point = m.created_at.strftime("%Y-%m-%d %H:%M:%S")
        server = self.target.describe().rsplit("/", 1)[0]
        what = (
            f"restore backup {m.id} of {m.database} (recovery point {point} UTC, "
            f"{m.raw_size} bytes of dump) into database {self.target.dbname} at {server} "
            f"with {self.jobs} jobs"
        )
        if self.state.holds_objects:
            what += (
                f"; the existing {self.target.dbname} ({self.state.describe()}) is kept, "
                "renamed aside"
            )
        if self.estimate:
            what += f". {self.estimate}"
        return what


@dataclass(frozen=True)
class RestoreResult:
    database: str
    moved_aside: str | None
    seconds: float
    neutralization: Neutralization | None
    #: roles the backup references that the server lacked, created without a password
    created_roles: list[RoleFacts] = field(default_factory=list)
    #: how the roles differ from the record (a login that is not a superuser)
    role_notes: list[str] = field(default_factory=list)


def _ident(base: str, suffix: str) -> str:
    return base.encode()[: MAX_IDENT - len(suffix)].decode("utf-8", "ignore") + suffix


def target_state(admin: ConnParams, target: ConnParams) -> TargetState:
    with admin.connect() as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (target.dbname,)
        ).fetchone()
    if not exists:
        return TargetState(False)
    with target.connect() as conn:
        return TargetState(True, user_objects(conn))


def last_drill_estimate(ctx: RunContext, manifest: DbManifest) -> str | None:
    """'The last drill restored N in T; expect about E' from the evidence, if any."""
    for report in reversed(load_evidence(ctx.storage).parsed()):
        if report.backup is None or report.rto is None or report.result != "pass":
            continue
        if (report.backup.source, report.backup.database) != (manifest.source, manifest.database):
            continue
        spent = sum(report.rto.phases.get(p, 0.0) for p in ("download", "restore", "verify"))
        size = report.backup.raw_size_bytes or report.backup.size_bytes
        estimate = estimate_restore_seconds(spent, size, manifest.raw_size)
        return (
            f"The last drill ({report.drill_id}) downloaded, restored and verified "
            f"{size} bytes in {human_duration(spent)}: expect about {human_duration(estimate)}"
        )
    return None


def plan_restore(
    ctx: RunContext,
    *,
    to: str,
    backup: str = "latest",
    before: datetime | None = None,
    database: str | None = None,
    jobs: int | None = None,
    source: str | None = None,
) -> RestorePlan:
    target = params_from_dsn(to)
    SECRETS.add(target.password)
    listing = list_db_backups(ctx.storage)
    listing.refuse_broken(backup)
    manifest = select_backup(
        listing.backups, backup, database=database, before=before, source=source
    )
    manifest = readable_manifest(ctx.config, manifest)  # exit 3 on a missing/wrong identity
    admin = admin_params(target)
    return RestorePlan(
        manifest=manifest,
        target=target,
        state=target_state(admin, target),
        jobs=jobs or default_jobs(ctx.config.drill.jobs),
        estimate=last_drill_estimate(ctx, manifest),
    )


def _drop(admin: ConnParams, name: str) -> None:
    with shielded():
        _drop_now(admin, name)


def _drop_now(admin: ConnParams, name: str) -> None:
    try:
        with admin.connect() as conn:
            query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(query.format(sql.Identifier(name)))
    except Exception as exc:  # the restore is already failing; say what is left behind
        log.error("could not drop the temporary database %s: %s", name, exc)


def check_target(plan: RestorePlan, *, force: bool) -> None:
    """Refuse a target database that holds anything a user made, unless forced."""
    if plan.state.holds_objects and not force:
        raise Refused(
            f"database {plan.target.dbname} exists and holds {plan.state.describe()}; "
            "refusing to replace it",
            hint="pass --force to restore anyway (the existing database is renamed aside, not "
            "dropped), or restore into another database name",
        )


@dataclass(frozen=True)
class RestoreChoices:
    """What the operator chose on the command line."""

    force: bool = False
    neutralize: bool = False
    #: no ownership nor grants restored, no role created
    no_owner: bool = False
    #: restore objects into the tablespaces they were in (the server must have them)
    keep_tablespaces: bool = False


def execute_restore(
    ctx: RunContext, plan: RestorePlan, choices: RestoreChoices | None = None
) -> RestoreResult:
    choices = choices or RestoreChoices()
    check_target(plan, force=choices.force)
    target, manifest = plan.target, plan.manifest
    started = time.monotonic()
    admin = admin_params(target)
    temp = _ident(target.dbname, f"__restoring_{secrets.token_hex(3)}")
    options = PipelineOptions(
        jobs=plan.jobs,
        no_owner=choices.no_owner,
        keep_tablespaces=choices.keep_tablespaces,
        bin_dir=ctx.config.postgres.bin_dir,
    )
    try:  # from CREATE on: an interrupt between any two statements drops the copy
        with tempfile.TemporaryDirectory(prefix="backdrill-restore-") as tmp:
            _phase("download", f"backup {manifest.id}")
            dump = fetch_backup(ctx.storage, manifest, Path(tmp), ctx.reporter, ctx.config)
            _phase("restore", f"dump downloaded and verified; restoring into {temp}")
            restored = restore_backup(manifest, Path(dump), admin, temp, options, ctx.reporter)
        _phase("verify", "row counts and content digests against the manifest")
        done = _check_copy(manifest, target.with_db(temp), neutralize_copy=choices.neutralize)
        _phase("swap", f"renaming {temp} to {target.dbname}")
        moved = _swap_into_place(admin, target, temp)
    except BaseException:
        _drop(admin, temp)
        raise
    return RestoreResult(
        target.dbname,
        moved,
        time.monotonic() - started,
        done,
        restored.created_roles,
        restored.role_notes,
    )


def _phase(name: str, detail: str) -> None:
    """One line per phase, as a drill logs them (on a terminal: above the bars)."""
    log.info("restore phase %s: %s", name, detail, extra={"fields": {"phase": name}})


def _check_copy(
    manifest: DbManifest, restored: ConnParams, *, neutralize_copy: bool
) -> Neutralization | None:
    """Compare the copy's rows and content with the manifest, as a drill does
    (services/verify_content.py), then neutralize it when asked."""
    failed = [c for c in verify_content(manifest, restored) if c.failed]
    if failed:
        detail = "; ".join(f"{c.name}: {c.detail}" for c in failed)
        raise IntegrityError(f"the restored data does not match the manifest: {detail}")
    if not neutralize_copy:
        return None
    with restored.connect() as conn:
        if not is_odoo(conn):
            raise Refused(f"--neutralize: {manifest.database} is not an Odoo database")
        done = neutralize(conn)
    log.info("neutralized: %s", done.describe())
    return done


def admin_params(target: ConnParams) -> ConnParams:
    """The maintenance connection: never the target database itself, which may be
    renamed aside or replaced (a restore of ``postgres`` goes through template1)."""
    return target.with_db("template1" if target.dbname == "postgres" else "postgres")


def _swap_into_place(admin: ConnParams, target: ConnParams, temp: str) -> str | None:
    """Rename the restored copy to the target's name. An existing database that holds
    anything a user made (looked at again now: it may have changed since the plan) goes
    aside first; only one holding nothing at all is dropped."""
    name = target.dbname
    moved: str | None = None
    try:
        state = target_state(admin, target)
        with admin.connect() as conn:
            if state.exists:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )
                if state.holds_objects:
                    moved = _ident(name, f"__before_restore_{utcnow():%Y%m%d%H%M%S}")
                    conn.execute(
                        sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                            sql.Identifier(name), sql.Identifier(moved)
                        )
                    )
                else:
                    drop = sql.SQL("DROP DATABASE {} WITH (FORCE)")
                    conn.execute(drop.format(sql.Identifier(name)))
            conn.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(temp), sql.Identifier(name)
                )
            )
    except psycopg.Error as exc:
        raise PostgresError(
            f"cannot move the restored database into place: {first_line(exc)}"
        ) from None
    return moved
