"""No internal error on any input: hypothesis drives the CLI (in-process) with arbitrary
arguments, arbitrary config documents and arbitrary repository documents (manifests,
files snapshots, locks, drill reports written into a local repository). Every run ends
with a documented exit code and, for errors, one-line messages: never a traceback,
never "internal error"."""

from __future__ import annotations

import copy
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers.cli_env import cli, fresh_env
from helpers.repo import write_object
from helpers.seed import write_drill, write_manifest
from helpers.strategies import CONFIG_KEYS, nested

pytestmark = pytest.mark.reliability

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# -- arbitrary JSON, and mutations of real documents ----------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "",
            "..",
            "../x",
            "/etc/passwd",
            "a/../../x",
            "dangling",
            "dangling/x",
            "\x00",
            "\x1b[31m",
            "2099-01-01T00:00:00Z",
            "9999-12-31T23:59:59-05:00",
            "0" * 64,
            "zstd",
            "raw",
            "age-zstd",
            "symlink",
            "file",
            "dir",
        ]
    ),
    st.text(max_size=12),
)
json_values = nested(json_scalars, st.text(max_size=6), lists=3, dicts=3, leaves=8)


def paths_in(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += paths_in(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += paths_in(value, (*prefix, i))
    return found


def replace_at(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


@st.composite
def mutated(draw: st.DrawFn, seed: Any) -> Any:
    doc = copy.deepcopy(seed)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        path = draw(st.sampled_from(paths_in(doc)))
        if path and isinstance(path[-1], str) and draw(st.booleans()):
            parent = doc
            for part in path[:-1]:
                parent = parent[part]
            del parent[path[-1]]  # a missing field
        else:
            doc = replace_at(doc, path, draw(json_values))
    return doc


@st.composite
def encoded(draw: st.DrawFn, doc: Any) -> bytes:
    """The document as JSON, or cut short, or replaced by arbitrary bytes."""
    data = json.dumps(doc).encode()
    how = draw(st.sampled_from(["whole", "whole", "whole", "cut", "bytes"]))
    if how == "cut":
        return data[: draw(st.integers(min_value=0, max_value=len(data)))]
    if how == "bytes":
        return draw(st.binary(max_size=64))
    return data


def hostile_entries(sha: str) -> list[dict[str, Any]]:
    """Entries no backup writes: a dangling symlink with a file under it, escapes."""
    base = {"size": 10, "mtime_ns": 0, "mode": 0o644, "sha256": sha, "stored": "zstd"}
    return [
        {"path": "dangling", "type": "symlink", "size": 0, "mtime_ns": 0, "mode": 0o777,
         "target": "nowhere"},
        {"path": "dangling/file", "type": "file", **base},
        {"path": "../escape", "type": "file", **base},
        {"path": "/abs", "type": "file", **base},
        {"path": "d/file", "type": "file", **base},
        {"path": "x", "type": "symlink", "size": 0, "mtime_ns": 0, "mode": 0o777,
         "target": "/etc"},
        {"path": "x/passwd", "type": "file", **base},
    ]  # fmt: skip


# -- seeds: real documents, written by backdrill itself --------------------------------


@dataclass
class Seeds:
    manifest: dict[str, Any]
    snapshot: dict[str, Any]
    snapshot_key: str
    objects: dict[str, bytes]
    lock: dict[str, Any]
    report: dict[str, Any]


_seeds: Seeds | None = None


def seeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Seeds:
    global _seeds  # noqa: PLW0603 - built once per session: a real backup is not free
    if _seeds is not None:
        return _seeds
    env = fresh_env(tmp_path)
    assert cli(capsys, env, "backup", "files").code == 0
    repo = env.repo_dir
    (snap,) = repo.glob("files/*/snapshots/*.json.zst")
    snapshot = json.loads(zstandard.ZstdDecompressor().decompress(snap.read_bytes()))
    objects = {
        str(p.relative_to(repo)): p.read_bytes()
        for p in (repo / "files").rglob("*")
        if p.is_file() and "snapshots" not in p.parts
    }
    now = datetime.now(UTC)
    manifest = json.loads(write_manifest(repo, "odoo", now - timedelta(hours=3)).to_json())
    drill = write_drill(repo, now - timedelta(hours=1))
    report = json.loads((repo / "evidence" / drill / "report.json").read_text())
    lock = {
        "scope": "files-src",
        "token": "t",
        "command": "backup files",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "run_id": "r",
        "created_at": "2026-01-01T00:00:00Z",
        "expires_at": "2099-01-01T00:00:00Z",
    }
    _seeds = Seeds(manifest, snapshot, str(snap.relative_to(repo)), objects, lock, report)
    return _seeds


READ_COMMANDS: list[list[str]] = [
    ["list"],
    ["list", "files", "--json"],
    ["show", "SNAPSHOT", "--json"],
    ["show", "BACKUP"],
    ["verify", "--all", "--read-data"],
    ["status", "--json"],
    ["prune", "--dry-run"],
    ["drill", "history", "--verify"],
    ["restore", "files", "--to", "OUT", "--force"],
    ["backup", "files"],
    ["unlock", "files-src"],
]


@pytest.mark.slow
@SETTINGS
@given(data=st.data())
def test_arbitrary_repository_documents_never_make_an_internal_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: st.DataObject
) -> None:
    seed = seeds(tmp_path, capsys)
    env = fresh_env(tmp_path)
    for key, blob in seed.objects.items():
        write_object(env.repo, key, blob)
    manifest = data.draw(mutated(seed.manifest))
    backup_id = manifest.get("id") if isinstance(manifest, dict) else None
    backup_id = backup_id if isinstance(backup_id, str) and backup_id else "20260101T000000Z-aaaaaa"
    write_object(
        env.repo,
        f"db/odoo/{backup_id.replace('/', '_')[:60]}/manifest.json",
        data.draw(encoded(manifest)),
    )
    snapshot = data.draw(mutated(seed.snapshot))
    if isinstance(snapshot, dict) and isinstance(snapshot.get("entries"), list):
        sha = str(seed.snapshot["entries"][0].get("sha256") or "0" * 64)
        extra = data.draw(st.lists(st.sampled_from(hostile_entries(sha)), max_size=3))
        snapshot["entries"] = [*snapshot["entries"], *extra]
    raw = data.draw(encoded(snapshot))
    compress = data.draw(st.booleans()) or not raw
    stored = zstandard.ZstdCompressor().compress(raw) if compress else raw
    write_object(env.repo, seed.snapshot_key, stored)
    if data.draw(st.booleans()):
        write_object(env.repo, "locks/files-src", data.draw(encoded(data.draw(mutated(seed.lock)))))
    report = data.draw(mutated(seed.report))
    write_object(
        env.repo, "evidence/20260101T000000Z-bbbbbb/report.json", data.draw(encoded(report))
    )
    snapshot_id = Path(seed.snapshot_key).name.removesuffix(".json.zst")
    commands = data.draw(st.lists(st.sampled_from(READ_COMMANDS), min_size=3, max_size=6))
    for command in commands:
        args = [
            {"SNAPSHOT": snapshot_id, "BACKUP": backup_id[:60], "OUT": str(env.root / "out")}.get(
                a, a
            )
            for a in command
        ]
        cli(capsys, env, *args)


# -- arbitrary command lines ------------------------------------------------------------

SAFE_COMMANDS = [
    ["list"],
    ["show"],
    ["verify"],
    ["status"],
    ["prune"],
    ["unlock"],
    ["restore", "files"],
    ["restore", "db"],
    ["drill", "history"],
    ["backup", "files"],
    ["config"],
    ["drill"],
    ["backup"],
    [],
]
TOKENS = [
    "--json",
    "--all",
    "--read-data",
    "--read-data-subset",
    "--dry-run",
    "--force",
    "--to",
    "--snapshot",
    "--backup",
    "--before",
    "--database",
    "--source",
    "--source-name",
    "--jobs",
    "--wait",
    "--verify",
    "--html",
    "--rehash",
    "--keep-special-bits",
    "--no-owner",
    "--neutralize",
    "latest",
    "db",
    "files",
    "prune",
    "db-odoo",
    "files-src",
    "../x",
    "",
    "-1",
    "0",
    "10%",
    "150%",
    "1e400",
    "99999999999999999999",
    "15m",
    "-5m",
    "2026-13-45",
    "9999-12-31T23:59:59-05:00",
    "postgresql://u@127.0.0.1:notaport/db",
    "postgresql://u@127.0.0.1:0/db",
    "postgresql://[::1",
    "host=127.0.0.1 port=abc",
    "s3://",
    "s3://bucket/../x",
    "/dev/null",
    "/",
    "\x00",
    "\x1b]0;x\x07",
]


@pytest.mark.slow
@SETTINGS
@example(command=["restore", "db"], rest=["--to", "postgresql://u@127.0.0.1:notaport/db"])
@example(command=["unlock"], rest=["../x"])
@example(command=["verify"], rest=["--read-data-subset", "150%", "--all"])
@given(
    command=st.sampled_from(SAFE_COMMANDS),
    rest=st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=10)), max_size=6),
)
def test_arbitrary_command_lines_never_make_an_internal_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], rest: list[str]
) -> None:
    env = fresh_env(tmp_path)
    args = [*command, *rest]
    # `restore files --to` an existing directory of this machine would write into it
    if "restore" in args and "files" in args:
        args = [str(env.root / "out") if a in ("/", "/dev/null") else a for a in args]
    cli(capsys, env, *args)


# -- arbitrary configuration ------------------------------------------------------------

config_keys = st.one_of(st.sampled_from(CONFIG_KEYS), st.text(max_size=6))
config_docs = st.dictionaries(
    config_keys, nested(json_scalars, config_keys, lists=3, dicts=3, leaves=10), max_size=5
)


@pytest.mark.slow
@SETTINGS
@given(doc=config_docs, command=st.sampled_from([c for c in READ_COMMANDS if "OUT" not in c]))
def test_arbitrary_configuration_never_makes_an_internal_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: dict[str, Any], command: list[str]
) -> None:
    env = fresh_env(tmp_path, doc)
    args = [{"SNAPSHOT": "x", "BACKUP": "y"}.get(a, a) for a in command]
    cli(capsys, env, *args)
