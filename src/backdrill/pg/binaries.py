"""Find PostgreSQL client and server programs of a wanted major version.

Search order: ``postgres.bin_dir`` when configured, then PATH, then the per-version
directories where Debian/Ubuntu (``/usr/lib/postgresql/N/bin``) and the PGDG RPMs
(``/usr/pgsql-N/bin``) install them.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from backdrill.runtime.errors import PostgresError

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
#: a PostgreSQL version as backdrill records it: ``15.4``, ``9.6``, ``15``
VERSION_PATTERN = r"^[0-9]{1,4}(\.[0-9]{1,4}){0,2}$"


def major_version(version: str) -> int:
    """Pure: the major version of ``15.4`` (15) or ``9.6`` (9); ValueError otherwise."""
    if not re.fullmatch(VERSION_PATTERN, version):
        raise ValueError(f"not a PostgreSQL version: {version[:40]!r}")
    return int(version.split(".", 1)[0])


@dataclass(frozen=True)
class Program:
    name: str
    path: Path
    version: str  # "15.18"

    @property
    def major(self) -> int:
        return major_version(self.version)

    @property
    def bin_dir(self) -> Path:
        return self.path.parent


@functools.cache
def _version_of(path: str) -> str | None:
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(out)
    if not match:
        return None
    return f"{match.group(1)}.{match.group(2) or 0}"


def candidate_dirs(bin_dir: Path | None = None) -> list[Path]:
    dirs: list[Path] = []
    if bin_dir is not None:
        dirs.append(bin_dir)
    dirs.extend(Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p)
    versioned = glob.glob("/usr/lib/postgresql/*/bin") + glob.glob("/usr/pgsql-*/bin")
    dirs.extend(sorted((Path(d) for d in versioned), reverse=True))
    seen: set[Path] = set()
    unique: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            unique.append(d)
    return unique


def find_all(name: str, bin_dir: Path | None = None, *, only: bool = False) -> list[Program]:
    """Every distinct ``name`` program found, with its version (``only``: in
    ``bin_dir`` alone)."""
    found: dict[Path, Program] = {}
    dirs = [bin_dir] if only and bin_dir is not None else candidate_dirs(bin_dir)
    for d in dirs:
        exe = shutil.which(name, path=str(d))
        if exe is None:
            continue
        real = Path(exe).resolve()
        if real in found:
            continue
        version = _version_of(str(real))
        if version is not None:
            # a symlink into a version directory stands for that directory (its siblings
            # are there); a wrapper such as Debian's pg_wrapper stays as it is
            path = real if real.name == name else Path(exe)
            found[real] = Program(name, path, version)
    return list(found.values())


def choose(programs: list[Program], major: int, *, allow_newer: bool) -> Program | None:
    """Pure choice: the same major first, else (when allowed) the lowest newer major."""
    same = [p for p in programs if p.major == major]
    if same:
        return same[0]
    if allow_newer:
        newer = sorted((p for p in programs if p.major > major), key=lambda p: p.major)
        if newer:
            return newer[0]
    return None


def find_program(
    name: str, major: int, *, bin_dir: Path | None = None, allow_newer: bool = True
) -> Program:
    """A ``name`` program usable with a server of ``major``, or a PostgresError naming
    the versions found and the one needed. A configured ``bin_dir`` is the only place
    searched: the operator chose it, another version found elsewhere would surprise."""
    programs = find_all(name, bin_dir, only=True)
    chosen = choose(programs, major, allow_newer=allow_newer)
    if chosen is not None:
        return chosen
    found = ", ".join(f"{p.version} ({p.path})" for p in programs) or "none"
    need = f"{major}" + (" or newer" if allow_newer else "")
    where = f" in postgres -> bin_dir {bin_dir}" if bin_dir is not None else ""
    raise PostgresError(
        f"no usable {name} for PostgreSQL {major}{where}: need {need}, found {found}",
        hint=f"install postgresql-client-{major} or set postgres -> bin_dir",
    )
