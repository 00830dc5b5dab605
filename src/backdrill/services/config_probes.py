"""``config check`` probes beyond PostgreSQL and the repository: the filestore source,
what a drill needs to start, and the webhook. Each returns rows (name, ok, detail) with
the key path to fix; none raises, none waits long, none prints a secret."""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from backdrill.config.model import Config, S3Options
from backdrill.pg import binaries
from backdrill.repository.catalog import list_db_backups
from backdrill.runtime.errors import BackdrillError
from backdrill.runtime.redact import SECRETS
from backdrill.runtime.timeutil import human_size
from backdrill.storage import Storage, open_probe_storage
from backdrill.storage.base import ProbeResult

#: seconds ``config check`` waits for the webhook to answer
WEBHOOK_TIMEOUT = 5.0


def files_source_probes(config: Config) -> list[ProbeResult]:
    """``files -> source``: an existing, readable directory, or a reachable S3 prefix."""
    source = config.files.source
    if not source:
        return []
    name = "files source"
    if urlparse(source).scheme == "s3":
        try:
            store = open_probe_storage(
                source, config.files.s3 or S3Options(), tls_min=config.security.ssl_min
            )
            try:
                next(iter(store.list_objects("")), None)
            finally:
                store.close()
        except BackdrillError as exc:
            return [ProbeResult(name, False, f"files -> source {source}: {exc}")]
        return [ProbeResult(name, True, f"{source} can be listed")]
    path = Path(source)
    if not path.exists():
        detail = f"files -> source {source} does not exist: fix files -> source (the "
        detail += "Odoo filestore, e.g. ~odoo/.local/share/Odoo/filestore/<database>)"
        return [ProbeResult(name, False, detail)]
    if not path.is_dir():
        return [ProbeResult(name, False, f"files -> source {source} is not a directory")]
    if not os.access(path, os.R_OK | os.X_OK):
        detail = f"files -> source {source} is not readable by this user: grant read access "
        detail += "to the backup user"
        return [ProbeResult(name, False, detail)]
    return [ProbeResult(name, True, f"{source} is a readable directory")]


def _writable_dir(path: Path) -> str | None:
    """None when ``path`` (or, not yet made, its nearest existing parent) is a writable
    directory; else why not."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return f"{path}: no existing parent"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable by this user"
    return None


def _sandbox_probe(config: Config, major: int | None) -> ProbeResult:
    kind = config.drill.sandbox
    name = f"drill sandbox {kind}"
    if kind == "docker":
        from backdrill.sandbox.docker import docker_available

        ok, why = docker_available()
        fix = ": start Docker, install backdrill[docker], or set drill -> sandbox local|server"
        return ProbeResult(name, ok, "a Docker engine answers" if ok else why + fix)
    if kind == "server":
        ok = config.drill.server_dsn is not None
        return ProbeResult(name, ok, "drill -> server_dsn set" if ok else "set drill -> server_dsn")
    if major is None:
        return ProbeResult(name, False, "PostgreSQL unreachable: its major version is unknown")
    missing = []
    for program in ("initdb", "pg_ctl"):
        found = binaries.find_all(program, config.postgres.bin_dir)
        chosen = binaries.choose(found, major, allow_newer=False)
        if chosen is None:
            versions = ", ".join(p.version for p in found) or "none"
            missing.append(f"{program} {major} (found: {versions})")
    if missing:
        detail = f"missing {'; '.join(missing)}: install the postgresql-{major} server "
        detail += "package, set postgres -> bin_dir, or set drill -> sandbox docker|server"
        return ProbeResult(name, False, detail)
    return ProbeResult(name, True, f"initdb and pg_ctl {major} found")


def drill_probes(config: Config, storage: Storage | None, major: int | None) -> list[ProbeResult]:
    """What ``drill run`` needs: its sandbox, writable report and work directories, and
    room in the work directory for the largest latest backup, restored."""
    work = config.drill.work_dir or Path(tempfile.gettempdir())
    work_probe = _drill_dir_probe("work_dir", work)
    rows = [
        _sandbox_probe(config, major),
        _drill_dir_probe("report_dir", config.drill.report_dir),
        work_probe,
    ]
    if storage is not None and work_probe.ok:
        rows.extend(_space_probe(storage, work))
    return rows


def _drill_dir_probe(key: str, path: Path) -> ProbeResult:
    """``drill <key>``: ``path`` is a directory backdrill can write in."""
    why = _writable_dir(path)
    detail = f"{path} writable" if why is None else f"drill -> {key}: {why}"
    return ProbeResult(f"drill {key}", why is None, detail)


def _space_probe(storage: Storage, work: Path) -> list[ProbeResult]:
    try:
        backups = list_db_backups(storage).backups
    except BackdrillError:
        return []  # the repository rows say why
    if not backups:
        return []
    need = max(m.raw_size for m in backups)
    probe = work
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    ok = free >= need
    detail = f"{human_size(free)} free in {probe}; the largest backup dumps {human_size(need)}"
    if not ok:
        detail += ": free space or set drill -> work_dir elsewhere"
    return [ProbeResult("drill free space", ok, detail)]


def webhook_probes(config: Config) -> list[ProbeResult]:
    """Whether ``notify -> webhook_url`` answers (any HTTP status does): a HEAD with a
    short timeout. The URL is a secret: never shown, not even its host."""
    secret = config.notify.webhook_url
    if secret is None:
        return []
    url = secret.get_secret_value()
    name = "webhook"
    if urlparse(url).scheme not in ("http", "https"):
        return [ProbeResult(name, False, "notify -> webhook_url is not an http(s) URL")]
    request = urllib.request.Request(url, method="HEAD")  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT):  # noqa: S310
            pass
    except urllib.error.HTTPError as exc:  # it answered: a HEAD may well be refused
        return [ProbeResult(name, True, f"answers (HTTP {exc.code} to HEAD)")]
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        text = SECRETS.redact(str(reason)).replace(url, "<webhook_url>")
        detail = f"notify -> webhook_url does not answer within {WEBHOOK_TIMEOUT:g} s: {text}"
        return [ProbeResult(name, False, detail)]
    return [ProbeResult(name, True, "answers")]
