"""The PostgreSQL sources of a config: the default one (top-level ``postgres:``) and the
named ones of ``sources:``, each with its retention and targets in force.

A config without ``sources:`` has one source, ``default``. With ``sources:``, the
default source exists when ``postgres:`` is given too. Backups of a source that is no
longer configured keep the top-level retention and targets.
"""

from __future__ import annotations

from dataclasses import dataclass

from backdrill.config.model import Config, PostgresConfig, RetentionConfig, TargetsConfig
from backdrill.repository.layout import DEFAULT_SOURCE
from backdrill.runtime.errors import UsageError
from backdrill.runtime.text import terminal


@dataclass(frozen=True)
class Source:
    name: str
    postgres: PostgresConfig
    retention: RetentionConfig
    targets: TargetsConfig


def configured_sources(config: Config) -> list[Source]:
    """Every configured source, the default one first."""
    found: list[Source] = []
    if not config.sources or "postgres" in config.model_fields_set:
        found.append(Source(DEFAULT_SOURCE, config.postgres, config.retention, config.targets))
    for name, cfg in sorted(config.sources.items()):
        found.append(
            Source(name, cfg, cfg.retention or config.retention, cfg.targets or config.targets)
        )
    return found


def find_source(config: Config, name: str) -> Source:
    """The configured source ``name`` (``--source``); a usage error naming the others."""
    sources = configured_sources(config)
    for source in sources:
        if source.name == name:
            return source
    names = ", ".join(s.name for s in sources)
    raise UsageError(
        f"no source {terminal(name)!r} in the config",
        hint=f"the configured sources: {names}",
    )


def retention_of(config: Config, name: str) -> RetentionConfig:
    """The retention of the source ``name``'s backups: its own, else the top-level one."""
    named = config.sources.get(name)
    return named.retention or config.retention if named else config.retention


def targets_of(config: Config, name: str) -> TargetsConfig:
    named = config.sources.get(name)
    return named.targets or config.targets if named else config.targets


def attempt_scope(database: str, source: str | None) -> str:
    """The scope a run records its attempt under and messages name: the database; of
    a named source ``<source>/<database>`` (no database: the run as a whole, "")."""
    if source is None or source == DEFAULT_SOURCE or not database:
        return database
    return f"{source}/{database}"
