"""Do ``cron/backdrill.cron`` and the ``ops/systemd`` timers fire when the SSOT says?

Cron expressions are expanded with croniter; systemd ``OnCalendar=`` values with the
small parser below, which understands the forms these units use
(``[Weekday] Y-M-D HH:MM[:SS] [UTC]`` with ``*``, numbers, ``a,b`` lists and ``a..b``
ranges, and the ``daily``/``weekly``/``monthly`` shorthands). Two schedules agree when
they fire at exactly the same instants over two whole years.
"""

from __future__ import annotations

import configparser
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from croniter import croniter

from backdrill.policy.standards import Finding

CRON_FILE = Path("cron/backdrill.cron")
SYSTEMD_DIR = Path("ops/systemd")
WINDOW = (datetime(2027, 1, 1, tzinfo=UTC), datetime(2029, 1, 1, tzinfo=UTC))

_ENV_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\s*=")
_OPTS_WITH_VALUE = {"--config", "-c", "--log-format", "--run-id", "--metrics-file"}
_TWO_WORD = {"backup", "drill", "restore", "config", "standards"}
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SHORTHANDS = {
    "minutely": "*-*-* *:*:00",
    "hourly": "*-*-* *:00:00",
    "daily": "*-*-* 00:00:00",
    "weekly": "Mon *-*-* 00:00:00",
    "monthly": "*-*-01 00:00:00",
    "yearly": "*-01-01 00:00:00",
    "annually": "*-01-01 00:00:00",
}


class ScheduleError(ValueError):
    """A schedule file this module cannot read."""


def job_of(command: str) -> str | None:
    """``/usr/local/bin/backdrill --config X backup db`` -> ``backup db``."""
    words = shlex.split(command)
    for i, word in enumerate(words):
        if Path(word).name == "backdrill":
            rest = words[i + 1 :]
            break
    else:
        return None
    j = 0
    while j < len(rest) and rest[j].startswith("-"):
        j += 2 if rest[j] in _OPTS_WITH_VALUE and "=" not in rest[j] else 1
    if j >= len(rest):
        return None
    if rest[j] in _TWO_WORD and j + 1 < len(rest):
        return f"{rest[j]} {rest[j + 1]}"
    return rest[j]


@dataclass(frozen=True)
class CronFile:
    env: dict[str, str]
    jobs: dict[str, str]  # job -> five-field expression


def parse_cron_file(text: str, *, with_user: bool = True) -> CronFile:
    """An ``/etc/cron.d`` file (five time fields, a user, the command)."""
    env: dict[str, str] = {}
    jobs: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if _ENV_LINE.match(line):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip().strip("'\"")
            continue
        fields = line.split(None, 6 if with_user else 5)
        if len(fields) < (7 if with_user else 6):
            raise ScheduleError(f"line {number}: not a cron entry: {line}")
        expr = " ".join(fields[:5])
        if not croniter.is_valid(expr):
            raise ScheduleError(f"line {number}: invalid cron expression {expr!r}")
        job = job_of(fields[-1])
        if job is None:
            continue
        if job in jobs:
            raise ScheduleError(f"line {number}: {job} is scheduled twice")
        jobs[job] = expr
    return CronFile(env, jobs)


def cron_times(expr: str, start: datetime, end: datetime) -> Iterator[datetime]:
    it = croniter(expr, start - timedelta(seconds=1))
    while True:
        moment = it.get_next(datetime)
        if moment >= end:
            return
        yield moment


def _values(part: str, low: int, high: int, names: tuple[str, ...] = ()) -> set[int]:
    def one(token: str) -> int:
        token = token.strip().lower()
        if names and token[:3] in names:
            return names.index(token[:3])
        if not token.isdigit():
            raise ScheduleError(f"not a number: {token!r}")
        return int(token)

    if part == "*":
        return set(range(low, high + 1))
    out: set[int] = set()
    for item in part.split(","):
        if ".." in item:
            a, b = item.split("..", 1)
            out.update(range(one(a), one(b) + 1))
        else:
            out.add(one(item))
    if not out or min(out) < low or max(out) > high:
        raise ScheduleError(f"{part!r} is out of range {low}..{high}")
    return out


@dataclass(frozen=True)
class Calendar:
    weekdays: set[int]  # 0 = Monday
    years: set[int] | None  # None: every year
    months: set[int]
    days: set[int]
    hours: set[int]
    minutes: set[int]
    seconds: set[int]
    utc: bool


def parse_oncalendar(spec: str) -> Calendar:
    text = _SHORTHANDS.get(spec.strip().lower(), spec.strip())
    tokens = text.split()
    utc = False
    if tokens and tokens[-1] in ("UTC", "Etc/UTC"):
        utc = True
        tokens = tokens[:-1]
    weekdays = set(range(7))
    if tokens and tokens[0][:3].lower() in _WEEKDAYS:
        weekdays = _values(tokens.pop(0), 0, 6, _WEEKDAYS)
    if len(tokens) != 2:
        raise ScheduleError(f"unsupported OnCalendar form: {spec!r}")
    date_part, time_part = tokens
    dparts = date_part.split("-")
    if len(dparts) == 2:
        dparts = ["*", *dparts]
    if len(dparts) != 3:
        raise ScheduleError(f"unsupported date in OnCalendar: {date_part!r}")
    tparts = time_part.split(":")
    if len(tparts) == 2:
        tparts.append("00")
    if len(tparts) != 3:
        raise ScheduleError(f"unsupported time in OnCalendar: {time_part!r}")
    return Calendar(
        weekdays=weekdays,
        years=None if dparts[0] == "*" else _values(dparts[0], 1970, 9999),
        months=_values(dparts[1], 1, 12),
        days=_values(dparts[2], 1, 31),
        hours=_values(tparts[0], 0, 23),
        minutes=_values(tparts[1], 0, 59),
        seconds=_values(tparts[2], 0, 59),
        utc=utc,
    )


def calendar_times(cal: Calendar, start: datetime, end: datetime) -> Iterator[datetime]:
    day: date = start.date()
    while day <= end.date():
        if (
            (cal.years is None or day.year in cal.years)
            and day.month in cal.months
            and day.day in cal.days
            and day.weekday() in cal.weekdays
        ):
            for h in sorted(cal.hours):
                for m in sorted(cal.minutes):
                    for s in sorted(cal.seconds):
                        moment = datetime(day.year, day.month, day.day, h, m, s, tzinfo=UTC)
                        if start <= moment < end:
                            yield moment
        day += timedelta(days=1)


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except (OSError, configparser.Error) as exc:
        raise ScheduleError(f"{path}: {exc}") from None
    return parser


def systemd_jobs(directory: Path) -> dict[str, tuple[str, str]]:
    """``{job: (OnCalendar, timer file name)}`` of every timer whose service runs backdrill."""
    jobs: dict[str, tuple[str, str]] = {}
    for timer in sorted(directory.glob("*.timer")):
        unit = _unit(timer)
        calendar = unit.get("Timer", "OnCalendar", fallback=None)
        if not calendar:
            raise ScheduleError(f"{timer.name}: no OnCalendar=")
        service_name = unit.get("Timer", "Unit", fallback=timer.with_suffix(".service").name)
        service = directory / service_name
        if not service.is_file():
            raise ScheduleError(f"{timer.name}: its unit {service_name} is missing")
        exec_start = _unit(service).get("Service", "ExecStart", fallback="")
        job = job_of(exec_start.lstrip("-@+!:"))
        if job is None:
            raise ScheduleError(f"{service_name}: ExecStart does not run backdrill")
        if job in jobs:
            raise ScheduleError(f"{timer.name}: {job} is scheduled twice")
        jobs[job] = (calendar, timer.name)
    return jobs


def first_difference(a: list[datetime], b: list[datetime]) -> str:
    only_a = sorted(set(a) - set(b))
    only_b = sorted(set(b) - set(a))
    parts = []
    if only_a:
        parts.append(f"fires at {only_a[0]:%Y-%m-%d %H:%M:%S}Z")
    if only_b:
        parts.append(f"does not fire at {only_b[0]:%Y-%m-%d %H:%M:%S}Z")
    return " and ".join(parts)


def compare(
    ssot_jobs: dict[str, str],
    cron: CronFile | None,
    timers: dict[str, tuple[str, str]] | None,
) -> list[Finding]:
    """Pure: one finding per (file, job) saying whether it fires exactly as the SSOT."""
    start, end = WINDOW
    wanted = {job: list(cron_times(expr, start, end)) for job, expr in ssot_jobs.items()}
    findings: list[Finding] = []
    if cron is not None:
        tz_ok = cron.env.get("CRON_TZ") == "UTC"
        findings.append(
            Finding("cron timezone", tz_ok, "CRON_TZ=UTC" if tz_ok else f"{CRON_FILE}: CRON_TZ=UTC")
        )
        for job in sorted(set(wanted) | set(cron.jobs)):
            name = f"cron schedule {job}"
            if job not in wanted:
                findings.append(Finding(name, False, f"{CRON_FILE} runs it; the SSOT does not"))
            elif job not in cron.jobs:
                findings.append(Finding(name, False, f"missing from {CRON_FILE}"))
            else:
                got = list(cron_times(cron.jobs[job], start, end))
                ok = got == wanted[job]
                detail = (
                    cron.jobs[job]
                    if ok
                    else (
                        f"{CRON_FILE} {cron.jobs[job]!r} {first_difference(got, wanted[job])}; "
                        f"the SSOT says {ssot_jobs[job]!r}"
                    )
                )
                findings.append(Finding(name, ok, detail))
    if timers is not None:
        for job in sorted(set(wanted) | set(timers)):
            name = f"systemd timer {job}"
            if job not in wanted:
                findings.append(
                    Finding(name, False, f"{timers[job][1]} runs it; the SSOT does not")
                )
                continue
            if job not in timers:
                findings.append(Finding(name, False, f"no timer in {SYSTEMD_DIR} runs it"))
                continue
            spec, timer = timers[job]
            try:
                cal = parse_oncalendar(spec)
            except ScheduleError as exc:
                findings.append(Finding(name, False, f"{timer}: {exc}"))
                continue
            if not cal.utc:
                findings.append(Finding(name, False, f"{timer}: OnCalendar={spec} lacks UTC"))
                continue
            got = list(calendar_times(cal, start, end))
            ok = got == wanted[job]
            detail = (
                f"{timer}: {spec}"
                if ok
                else (
                    f"{timer} OnCalendar={spec} {first_difference(got, wanted[job])}; "
                    f"the SSOT says {ssot_jobs[job]!r}"
                )
            )
            findings.append(Finding(name, ok, detail))
    return findings


def check_schedules(root: Path, data: dict[str, Any]) -> list[Finding]:
    """Standards-check hook: the cron file and timers under ``root`` against the SSOT
    ``data``; nothing to check where neither exists."""
    from backdrill.policy.ssot import parse_ssot
    from backdrill.runtime.errors import ConfigError

    cron_path, systemd_path = root / CRON_FILE, root / SYSTEMD_DIR
    if not cron_path.is_file() and not systemd_path.is_dir():
        return []
    try:
        ssot_jobs = parse_ssot(data, "ssot").schedules()
    except ConfigError:
        return []  # reported by the domain and structure checks
    try:
        cron = parse_cron_file(cron_path.read_text()) if cron_path.is_file() else None
        timers = systemd_jobs(systemd_path) if systemd_path.is_dir() else None
    except (ScheduleError, OSError) as exc:
        return [Finding("schedules readable", False, str(exc))]
    return compare(ssot_jobs, cron, timers)
