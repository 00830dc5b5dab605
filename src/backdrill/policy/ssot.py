"""The single source of truth (``ops/ssot/system_design_map.yaml``): model, loading, and
the policy (targets, retention, schedules, warning fraction) backdrill derives from it.

When the config names an SSOT, its targets and retention come from the SSOT; values the
config also gives must agree, and :func:`disagreements` names those that do not (shown
by ``config check``). The SSOT wins where they differ.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from backdrill.config.yamlstrict import yaml_error_text
from backdrill.runtime.errors import ConfigError

if TYPE_CHECKING:
    from backdrill.config.model import Config

log = logging.getLogger(__name__)

DEFAULT_PATH = Path("ops/ssot/system_design_map.yaml")

#: the nine domains of the System Design Map, in its order
DOMAINS = (
    "system_design_fundamentals",
    "service_communication",
    "load_balancing",
    "database_storage",
    "caching_cdn",
    "scalability_fault_tolerance",
    "observability_monitoring",
    "security_reliability",
    "production_patterns",
)

#: backdrill commands the SSOT may schedule
JOBS = ("backup db", "backup files", "prune", "drill run")

NonEmpty = Annotated[str, Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Domain(_Model):
    title: str | None = None
    stack: Annotated[list[NonEmpty], Field(min_length=1)]
    owners: Annotated[list[NonEmpty], Field(min_length=1)]


class ScheduleEntry(_Model):
    component: str | None = None
    job: str | None = None
    schedule: str | None = None
    cron: str | None = None
    retention_days: Annotated[int, Field(ge=1)] | None = None
    #: the config's named PostgreSQL source (``sources:``) a ``backup db`` row is about;
    #: None: the default source (``postgres:``)
    source: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")] | None = None

    @model_validator(mode="after")
    def _job_needs_cron(self) -> ScheduleEntry:
        if self.job is not None:
            if self.job not in JOBS:
                raise ValueError(f"job must be one of: {', '.join(JOBS)}")
            if not self.cron and self.source is None:  # a source's row rides its job's
                raise ValueError(f"job {self.job!r} needs a cron schedule")
            from croniter import croniter

            if self.cron and not croniter.is_valid(self.cron):
                raise ValueError(f"cron {self.cron!r} is not a valid cron expression")
        return self


class Backups(_Model):
    timezone: str = "UTC"
    schedule: Annotated[list[ScheduleEntry], Field(min_length=1)]
    maintenance: list[ScheduleEntry] = Field(default_factory=list)
    min_keep: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _utc(self) -> Backups:
        if self.timezone != "UTC":
            raise ValueError("timezone must be UTC (the design map schedules in UTC)")
        return self

    @model_validator(mode="after")
    def _one_schedule_per_job(self) -> Backups:
        """One cron line runs a job for every source: rows of one job share its cron."""
        crons: dict[str, str] = {}
        for entry in [*self.schedule, *self.maintenance]:
            if entry.job is None or entry.cron is None:
                continue
            if crons.setdefault(entry.job, entry.cron) != entry.cron:
                raise ValueError(
                    f"job {entry.job!r} has two schedules ({crons[entry.job]!r}, "
                    f"{entry.cron!r}): one run covers every source"
                )
        return self


class RecoveryObjectives(_Model):
    rpo_hours: Annotated[float, Field(gt=0)]
    rto_hours: Annotated[float, Field(gt=0)]
    drill_max_age_days: Annotated[float, Field(gt=0)] = 95


class Threshold(_Model):
    warning: Annotated[float, Field(gt=0)]
    critical: Annotated[float, Field(gt=0)]

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if self.warning > self.critical:
            raise ValueError("warning must not exceed critical")
        return self


class HealthEndpoint(_Model):
    service: str
    endpoint: str
    expected: int = 200


class Ssot(_Model):
    version: str
    domains: dict[str, Domain]
    backups: Backups
    recovery_objectives: RecoveryObjectives
    health_endpoints: list[HealthEndpoint] = Field(default_factory=list)
    alert_thresholds: dict[str, Threshold] = Field(default_factory=dict)
    required_runbooks: list[str] = Field(default_factory=list)

    def entries(self) -> list[ScheduleEntry]:
        return [*self.backups.schedule, *self.backups.maintenance]

    def schedules(self) -> dict[str, str]:
        """``{"backup db": "0 3 * * *", …}``: each scheduled backdrill job's cron."""
        return {e.job: e.cron for e in self.entries() if e.job is not None and e.cron}

    def retention_days(self, job: str = "backup db", source: str | None = None) -> int | None:
        """The retention of ``job``'s row for ``source`` (None: the default source)."""
        for entry in self.backups.schedule:
            if entry.job == job and entry.source == source:
                return entry.retention_days
        return None

    def sources(self) -> list[str]:
        """The named sources the ``backup db`` rows name."""
        return [e.source for e in self.backups.schedule if e.job == "backup db" and e.source]


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; ConfigError naming the file, line and problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {yaml_error_text(exc)}") from None


def parse_ssot(data: Any, source: str) -> Ssot:
    from backdrill.config.loading import format_validation_error

    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level")
    try:
        return Ssot.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_ssot(path: Path) -> Ssot:
    return parse_ssot(read_yaml(path), str(path))


@dataclass(frozen=True)
class Policy:
    """What backdrill enforces: from the SSOT when there is one, else from the config."""

    rpo_hours: float = 24.0
    rto_hours: float = 4.0
    retention_days: int = 30
    drill_max_age_days: float = 95.0
    warning_fraction: float = 0.9
    critical_fraction: float = 1.0
    schedules: dict[str, str] = field(default_factory=dict)
    source: str = "config"


def policy_from(config: Config, ssot: Ssot | None, source: str = "ssot") -> Policy:
    if ssot is None:
        return Policy(
            rpo_hours=config.targets.rpo_hours,
            rto_hours=config.targets.rto_hours,
            retention_days=config.retention.days,
        )
    age = ssot.alert_thresholds.get("backup_age_fraction")
    return Policy(
        rpo_hours=ssot.recovery_objectives.rpo_hours,
        rto_hours=ssot.recovery_objectives.rto_hours,
        retention_days=ssot.retention_days() or config.retention.days,
        drill_max_age_days=ssot.recovery_objectives.drill_max_age_days,
        warning_fraction=age.warning if age else 0.9,
        critical_fraction=age.critical if age else 1.0,
        schedules=ssot.schedules(),
        source=source,
    )


def _ssot_values(ssot: Ssot) -> dict[tuple[str, str], float | int | None]:
    return {
        ("targets", "rpo_hours"): ssot.recovery_objectives.rpo_hours,
        ("targets", "rto_hours"): ssot.recovery_objectives.rto_hours,
        ("retention", "days"): ssot.retention_days(),
        ("retention", "min_keep"): ssot.backups.min_keep,
    }


def _source_retention(ssot: Ssot, name: str) -> dict[str, int]:
    """What the SSOT's ``backup db`` row of the named source sets of its retention."""
    values = {"days": ssot.retention_days("backup db", name), "min_keep": ssot.backups.min_keep}
    return {k: v for k, v in values.items() if v is not None}


def disagreements(config: Config, ssot: Ssot) -> list[str]:
    """Pure: every value the config gives explicitly that differs from the SSOT's, as
    ``targets -> rpo_hours: config 12, SSOT 24``; a named source's retention too."""
    found: list[str] = []
    for (section, key), wanted in _ssot_values(ssot).items():
        model = getattr(config, section)
        if wanted is None or key not in model.model_fields_set:
            continue
        given = getattr(model, key)
        if float(given) != float(wanted):
            found.append(f"{section} -> {key}: config {given:g}, SSOT {wanted:g}")
    for name in ssot.sources():
        source = config.sources.get(name)
        if source is None:  # config check warns (missing_sources)
            continue
        for key, wanted in _source_retention(ssot, name).items():
            own = source.retention
            if own is not None and key in own.model_fields_set and getattr(own, key) != wanted:
                found.append(
                    f"sources -> {name} -> retention -> {key}: "
                    f"config {getattr(own, key)}, SSOT {wanted}"
                )
    return found


def missing_sources(config: Config, ssot: Ssot) -> list[str]:
    """Pure: the named sources the SSOT's ``backup db`` rows schedule that the config
    does not define (their connection lives only in the config)."""
    return [name for name in ssot.sources() if name not in config.sources]


def apply_ssot(config: Config, base_dir: Path) -> tuple[Config, Ssot, Path]:
    """Load the config's SSOT (a relative path is relative to the config file) and return
    the config with targets and retention taken from it, the SSOT and its path."""
    assert config.ssot is not None
    path = config.ssot if config.ssot.is_absolute() else base_dir / config.ssot
    ssot = load_ssot(path)
    updates: dict[str, Any] = {}
    for (section, key), wanted in _ssot_values(ssot).items():
        if wanted is not None:
            updates.setdefault(section, {})[key] = wanted
    new_sections: dict[str, Any] = {
        section: getattr(config, section).model_copy(update=values)
        for section, values in updates.items()
    }
    retention = new_sections.get("retention", config.retention)
    sources = {
        name: source.model_copy(
            update={
                "retention": (source.retention or retention).model_copy(
                    update=_source_retention(ssot, name)
                )
            }
        )
        if name in ssot.sources()
        else source
        for name, source in config.sources.items()
    }
    return config.model_copy(update={**new_sections, "sources": sources}), ssot, path


def resolve(config: Config, base_dir: Path) -> Config:
    """The effective config of ``config`` with an ``ssot:``; remembers the SSOT and the
    disagreements on it (see :func:`ssot_of`, :func:`conflicts_of`)."""
    effective, ssot, path = apply_ssot(config, base_dir)
    conflicts = tuple(disagreements(config, ssot))
    effective._ssot = ssot
    effective._ssot_path = path
    effective._ssot_conflicts = conflicts
    if conflicts:
        log.warning(
            "the config disagrees with the SSOT %s; the SSOT applies: %s",
            path,
            "; ".join(conflicts),
        )
    return effective


def ssot_of(config: Config) -> Ssot | None:
    value = config._ssot
    return value if isinstance(value, Ssot) else None


def conflicts_of(config: Config) -> tuple[str, ...]:
    return config._ssot_conflicts


def policy(config: Config) -> Policy:
    """The policy in force for ``config``: its SSOT's when it names one."""
    return policy_from(config, ssot_of(config), str(config._ssot_path))
