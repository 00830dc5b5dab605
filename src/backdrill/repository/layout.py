"""THE repository layout: every key and prefix backdrill reads or writes, in one table.

Nothing else in backdrill spells a repository key; modules ask this one (restic keeps
its keys the same way, in one layout). docs/format.md describes each document.

```
db/<database>/<id>/manifest.json       a database backup's commit marker (written last)
db/<database>/<id>/<object>            its dump objects (dump.pgdump.zst, dump-*.zst)
globals/<id>.sql.zst                   roles and tablespaces (pg_dumpall --globals-only)
sources/<source>/db/…, …/globals/…     the same for a named PostgreSQL source (config
                                       ``sources:``); the default source lies at the root
files/<source>/snapshots/<id>.json.zst a filestore snapshot's root (its commit marker)
files/chunks/<xx>/<sha256>             its entry chunks, by the sha256 of their stored
                                       bytes, shared by snapshots (schema_version 2)
files/objects/<xx>/<sha256>[.age]      filestore contents, content-addressed, shared
files/packs/<xx>/<pack id>[.index]     small filestore contents, many to a pack, and the
                                       pack's index (schema_version 3)
evidence/<drill id>/report.{json,md,html}  drill reports, one hash chain
locks/<scope>                          lock objects (conditional create, refreshed)
status/<command>-<scope>.json          the last attempt of a command per scope
```

Database names may hold any byte but ``/``-free segments are needed: they are
percent-quoted (:func:`db_dir`). Ids sort by time (:func:`id_time`).

The parsers (``split_*``) return None for a key that is not theirs: a foreign or
malformed key is never an error here, the caller decides what it means.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import PurePosixPath
from urllib.parse import quote, unquote, urlparse

DB_ROOT = "db/"
SOURCES_ROOT = "sources/"
#: the PostgreSQL source of the top-level ``postgres:``: its keys lie at the root
DEFAULT_SOURCE = "default"
GLOBALS_ROOT = "globals/"
FILES_ROOT = "files/"
FILES_OBJECTS_ROOT = "files/objects/"
FILES_CHUNKS_ROOT = "files/chunks/"
FILES_PACKS_ROOT = "files/packs/"
#: the keys under ``files/`` that are not a source's: content-addressed, shared
FILES_CONTENT_ROOTS = (FILES_OBJECTS_ROOT, FILES_CHUNKS_ROOT, FILES_PACKS_ROOT)
EVIDENCE_ROOT = "evidence/"
LOCKS_ROOT = "locks/"
STATUS_ROOT = "status/"

MANIFEST_NAME = "manifest.json"
GLOBALS_SUFFIX = ".sql.zst"
SNAPSHOTS_DIR = "snapshots"
SNAPSHOT_SUFFIX = ".json.zst"
#: an encrypted filestore object's key ends so: never mixed with plaintext ones
ENCRYPTED_SUFFIX = ".age"
#: a pack's index lies beside it: ``files/packs/<xx>/<pack id>.index``
PACK_INDEX_SUFFIX = ".index"
REPORT_JSON = "report.json"

#: every top-level prefix, for a whole-repository listing that must know them all
ROOTS = (DB_ROOT, SOURCES_ROOT, GLOBALS_ROOT, FILES_ROOT, EVIDENCE_ROOT, LOCKS_ROOT, STATUS_ROOT)

_ID_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
#: a source name is one plain segment (files/<source>/ must not escape files/)
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
#: a pack id: 64 lowercase hex, chosen at random when the pack is opened
_PACK_ID = re.compile(r"^[0-9a-f]{64}$")
#: the objects/, chunks/ and packs/ directories of files/ are not sources
RESERVED_SOURCE_NAMES = frozenset(r[len(FILES_ROOT) :].rstrip("/") for r in FILES_CONTENT_ROOTS)


# --- ids --------------------------------------------------------------------------


def id_time(entry_id: str) -> datetime | None:
    """The moment encoded in a time-sortable id (``20261126T030000Z-1a2b3c``)."""
    try:
        return datetime.strptime(entry_id[:16], _ID_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


# --- database backups (per PostgreSQL source) ---------------------------------------


def source_root(source: str = DEFAULT_SOURCE) -> str:
    """Where a source's ``db/`` and ``globals/`` lie: the repository's root for the
    default source (the keys of every repository written before sources existed),
    ``sources/<name>/`` for a named one, so that two sources' same-named databases never
    share a key. ``""``: the root of every named source (``sources/``)."""
    if source == DEFAULT_SOURCE:
        return ""
    return f"{SOURCES_ROOT}{quote(source, safe='')}/" if source else SOURCES_ROOT


def split_source(key: str) -> tuple[str, str] | None:
    """(source, the rest from ``db/`` or ``globals/``) of a key under a source's root;
    None for any other key."""
    if key.startswith((DB_ROOT, GLOBALS_ROOT)):
        return DEFAULT_SOURCE, key
    if not key.startswith(SOURCES_ROOT):
        return None
    name, _, rest = key[len(SOURCES_ROOT) :].partition("/")
    source = unquote(name)
    if (
        not rest.startswith((DB_ROOT, GLOBALS_ROOT))
        or not source
        or source_root(source) != f"{SOURCES_ROOT}{name}/"
    ):
        return None
    return source, rest


def db_root(source: str = DEFAULT_SOURCE) -> str:
    return f"{source_root(source)}{DB_ROOT}"


def db_dir(database: str, source: str = DEFAULT_SOURCE) -> str:
    return f"{db_root(source)}{quote(database, safe='')}/"


def database_of_dir(segment: str) -> str:
    """The database of a directory name under ``db/`` (as ``list_dirs`` gives it)."""
    return unquote(segment)


def source_of_dir(segment: str) -> str:
    """The source of a directory name under ``sources/``."""
    return unquote(segment)


def backup_dir(database: str, backup_id: str, source: str = DEFAULT_SOURCE) -> str:
    return f"{db_dir(database, source)}{backup_id}/"


def manifest_key(database: str, backup_id: str, source: str = DEFAULT_SOURCE) -> str:
    return f"{backup_dir(database, backup_id, source)}{MANIFEST_NAME}"


def backup_object_key(
    database: str, backup_id: str, name: str, source: str = DEFAULT_SOURCE
) -> str:
    return f"{backup_dir(database, backup_id, source)}{name}"


def split_backup_key(key: str) -> tuple[str, str, str, str] | None:
    """``[sources/<source>/]db/<database>/<id>/<name>`` -> (source, database, id, name)."""
    found = split_source(key)
    if found is None or not found[1].startswith(DB_ROOT):
        return None
    source, rest = found
    parts = rest[len(DB_ROOT) :].split("/")
    if len(parts) != 3 or not all(parts):
        return None
    return source, unquote(parts[0]), parts[1], parts[2]


def database_of(key: str) -> tuple[str, str] | None:
    """(source, database) a ``db/`` key belongs to, whatever lies below its directory."""
    found = split_source(key)
    if found is None or not found[1].startswith(DB_ROOT):
        return None
    segment = found[1][len(DB_ROOT) :].split("/", 1)[0]
    return (found[0], unquote(segment)) if segment else None


def db_scope_label(database: str, source: str = DEFAULT_SOURCE) -> str:
    """Printable: ``db/odoo``; of a named source ``sources/supabase/db/postgres``."""
    return f"{db_root(source)}{database}"


# --- globals ----------------------------------------------------------------------


def globals_root(source: str = DEFAULT_SOURCE) -> str:
    """The roles and tablespaces of a source (``backup db --all``)."""
    return f"{source_root(source)}{GLOBALS_ROOT}"


def globals_key(entry_id: str, source: str = DEFAULT_SOURCE) -> str:
    return f"{globals_root(source)}{entry_id}{GLOBALS_SUFFIX}"


def split_globals_key(key: str, source: str = DEFAULT_SOURCE) -> str | None:
    """``<source root>globals/<id>.sql.zst`` -> id."""
    root = globals_root(source)
    if not key.startswith(root) or not key.endswith(GLOBALS_SUFFIX):
        return None
    entry_id = key[len(root) : -len(GLOBALS_SUFFIX)]
    return entry_id if entry_id and "/" not in entry_id else None


# --- filestore --------------------------------------------------------------------


def source_name(source: str | None, name: str | None = None) -> str | None:
    """THE name of a filestore source in the repository: ``files.name`` if given, else
    the last segment of the directory or of the ``s3://bucket/prefix`` (the bucket when
    there is no prefix); a relative directory is taken from the working directory, and
    ``/`` is ``root``. None when there is no source."""
    if name:
        return name
    if not source:
        return None
    parsed = urlparse(source)
    if parsed.scheme == "s3":
        return PurePosixPath(parsed.path.strip("/")).name or parsed.netloc or None
    return PurePosixPath(os.path.abspath(source)).name or "root"


def is_source_name(name: str) -> bool:
    return (
        bool(_SOURCE_NAME.match(name))
        and name not in RESERVED_SOURCE_NAMES
        and (name not in {".", ".."})
    )


def snapshots_prefix(source: str) -> str:
    return f"{FILES_ROOT}{source}/{SNAPSHOTS_DIR}/"


def snapshot_key(source: str, snapshot_id: str) -> str:
    return f"{snapshots_prefix(source)}{snapshot_id}{SNAPSHOT_SUFFIX}"


def split_snapshot_key(key: str) -> tuple[str, str] | None:
    """``files/<source>/snapshots/<id>.json.zst`` -> (source, id)."""
    if not key.startswith(FILES_ROOT) or key.startswith(FILES_CONTENT_ROOTS):
        return None
    parts = key[len(FILES_ROOT) :].split("/")
    if len(parts) != 3 or parts[1] != SNAPSHOTS_DIR or not parts[2].endswith(SNAPSHOT_SUFFIX):
        return None
    snapshot_id = parts[2].removesuffix(SNAPSHOT_SUFFIX)
    if not parts[0] or not snapshot_id:
        return None
    return parts[0], snapshot_id


def file_object_key(sha256: str, *, encrypted: bool = False) -> str:
    """A filestore content's key: ``files/objects/<first two hex>/<sha256>[.age]``."""
    suffix = ENCRYPTED_SUFFIX if encrypted else ""
    return f"{FILES_OBJECTS_ROOT}{sha256[:2]}/{sha256}{suffix}"


def chunk_key(address: str) -> str:
    """An entry chunk's key: ``files/chunks/<first two hex>/<sha256 of its stored bytes>``."""
    return f"{FILES_CHUNKS_ROOT}{address[:2]}/{address}"


def pack_key(pack_id: str) -> str:
    """A pack's key: ``files/packs/<first two hex>/<pack id>``."""
    return f"{FILES_PACKS_ROOT}{pack_id[:2]}/{pack_id}"


def pack_index_key(pack_id: str) -> str:
    """A pack's index: ``files/packs/<first two hex>/<pack id>.index``."""
    return f"{pack_key(pack_id)}{PACK_INDEX_SUFFIX}"


def split_pack_key(key: str) -> tuple[str, bool] | None:
    """``files/packs/xx/<id>`` -> (id, False); ``…/<id>.index`` -> (id, True); None for
    any other key (a foreign one, or a pack id that is not 64 lowercase hex)."""
    if not key.startswith(FILES_PACKS_ROOT):
        return None
    name = key[len(FILES_PACKS_ROOT) :]
    is_index = name.endswith(PACK_INDEX_SUFFIX)
    pack_id = name.removesuffix(PACK_INDEX_SUFFIX).rpartition("/")[2]
    if not _PACK_ID.match(pack_id) or key != (pack_index_key if is_index else pack_key)(pack_id):
        return None
    return pack_id, is_index


# --- evidence, locks, attempts -----------------------------------------------------


def report_key(drill_id: str, name: str = REPORT_JSON) -> str:
    return f"{EVIDENCE_ROOT}{drill_id}/{name}"


def split_report_key(key: str) -> tuple[str, str] | None:
    """``evidence/<drill id>/<name>`` -> (drill id, name)."""
    if not key.startswith(EVIDENCE_ROOT):
        return None
    parts = key[len(EVIDENCE_ROOT) :].split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]


def lock_key(scope: str) -> str:
    return f"{LOCKS_ROOT}{scope}"


def lock_scope_of(key: str) -> str | None:
    """``locks/<scope>`` -> scope."""
    if not key.startswith(LOCKS_ROOT):
        return None
    return key[len(LOCKS_ROOT) :] or None


def is_lock_key(key: str) -> bool:
    """Lock objects are rewritten and deleted in place (storage treats them apart)."""
    return key.startswith(LOCKS_ROOT)


def attempt_key(command: str, name: str) -> str:
    """``status/<command>-<name>.json``; ``name`` is already a plain segment."""
    return f"{STATUS_ROOT}{command}-{name}.json"
