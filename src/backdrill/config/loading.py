"""Finding, reading and parsing the configuration file.

Lookup order: ``--config``, ``$BACKDRILL_CONFIG``, ``./backdrill.yaml``,
``/etc/backdrill/backdrill.yaml``. The YAML is read by :mod:`backdrill.config.yamlstrict`
(only true/false are booleans, a repeated key is an error). A :class:`ConfigError`
names every problem at once, one line each, with its key path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backdrill.config.model import Config
from backdrill.config.yamlstrict import YamlProblem
from backdrill.config.yamlstrict import load as load_yaml
from backdrill.runtime.errors import ConfigError

DEFAULT_LOCATIONS = (Path("backdrill.yaml"), Path("/etc/backdrill/backdrill.yaml"))
#: a config file is a few KiB; anything this large is not one
MAX_CONFIG_BYTES = 1 << 20


def find_config_file(explicit: Path | None) -> Path:
    """Apply the documented lookup order; raise ConfigError naming every place tried."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config file {explicit} does not exist")
        return explicit
    from_env = os.environ.get("BACKDRILL_CONFIG")
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise ConfigError(f"config file {path} (from BACKDRILL_CONFIG) does not exist")
        return path
    for candidate in DEFAULT_LOCATIONS:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(p) for p in DEFAULT_LOCATIONS)
    raise ConfigError(
        f"no configuration file found (tried --config, BACKDRILL_CONFIG, {tried})",
        hint="pass --config FILE",
    )


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop pydantic's union-member tags (``literal['all']``, ``function-after[...]``)."""
    return tuple(
        p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))
    )


def format_validation_error(exc: ValidationError, source: str) -> str:
    """Every problem, one line each: the file, the key path and what is wrong."""
    errors = exc.errors(include_url=False, include_input=False)
    cleaned = [(_clean_loc(tuple(e["loc"])), e) for e in errors]
    # for a union, keep the alternative that got furthest (the longest key path)
    specific = [
        (loc, e)
        for loc, e in cleaned
        if not any(len(other) > len(loc) and other[: len(loc)] == loc for other, _ in cleaned)
    ]
    lines: list[str] = []
    seen: set[tuple[int | str, ...]] = set()
    for loc, error in specific:
        if loc in seen:  # another alternative of the same union member
            continue
        seen.add(loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            what = "unknown key"
        elif kind == "missing":
            what = "required key is missing"
        else:
            what = error["msg"].removeprefix("Value error, ")
        path = " -> ".join(_key_text(p) for p in loc) if loc else "(top level)"
        lines.append(one_line(f"{source}: {path}: {what}"))
    return "\n".join(lines)


def _key_text(key: int | str) -> str:
    text = str(key)
    return text if text.isprintable() and text.strip() == text and text else repr(text)


def one_line(text: str) -> str:
    """Escape line breaks and control characters (a YAML key may hold any of them)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def parse_config(data: Any, source: str, base_dir: Path | None = None) -> Config:
    if data is None:
        raise ConfigError(f"{source}: the file is empty; it needs at least storage -> url")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    config.register_secrets()
    if config.ssot is not None:
        from backdrill.policy.ssot import resolve

        config = resolve(config, base_dir or Path())
    return config


def load_config(path: Path) -> Config:
    source = str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{source}: larger than {MAX_CONFIG_BYTES} bytes; not a config")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read: {exc}") from None
    try:
        data = load_yaml(text)
    except YamlProblem as exc:
        raise ConfigError(one_line(f"{source}: {exc}")) from None
    return parse_config(data, source, path.parent)
