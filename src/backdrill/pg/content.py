"""Compute a database's content facts (``digests.ContentFacts``) from the database
itself: per table ``count(*)`` and the sum of the first 64 bits of each row's md5 (a sum
does not depend on row order and, unlike xor, counts duplicate rows); per large object
its size and a sha256 over the md5 of its 1 MiB chunks; per sequence its value.

At backup time several connections import the dump's exported snapshot (``SET
TRANSACTION SNAPSHOT``) and share the tables, largest first; in a restored copy they
read it as it is. Both sides fix every setting a value's text form depends on.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from backdrill.pg.connection import ConnParams, first_line
from backdrill.pg.connection import as_text as text
from backdrill.pg.introspect import USER_RELATIONS
from backdrill.repository.digests import (
    ContentFacts,
    LargeObjectContent,
    Method,
    SequenceValue,
    TableContent,
    TableKey,
)
from backdrill.runtime.errors import PostgresError

Conn = psycopg.Connection[tuple[object, ...]]

#: the session settings a row's text form depends on, the same on both sides
SESSION_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "extra_float_digits": "1",
    "bytea_output": "hex",
    "lc_monetary": "C",
    "search_path": "",
    # as pg_dump: every row or an error, never rows filtered by a policy; no timeout
    "row_security": "off",
    "statement_timeout": "0",
    "idle_in_transaction_session_timeout": "0",
}
LO_CHUNK = 1 << 20

# Relations whose content a dump holds: tables (leaf partitions included), sequences
# and materialized views.
RELATIONS_SQL = "SELECT n.nspname, c.relname, c.relkind, c.relpersistence, c.relpages" + (
    USER_RELATIONS.format(kinds="'r', 'S', 'm'")
)

# Tables whose every column hashes by value, the same in a restored copy: built-in
# types (a domain over one, an array of one), deterministic collations. Enums, reg*
# types and the like hash OIDs that a restore changes: those tables are digested by text.
HASHABLE_TYPES = [
    "bool",
    "char",
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "numeric",
    "text",
    "varchar",
    "bpchar",
    "name",
    "bytea",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "interval",
    "uuid",
    "jsonb",
    "oid",
]
RECORD_HASHABLE_SQL = """
WITH cols AS (
  SELECT a.attrelid, a.attcollation,
         CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END AS base
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
  WHERE a.attnum > 0 AND NOT a.attisdropped
)
SELECT n.nspname, c.relname,
       bool_and(cols.attcollation IN (0, 100, 950) AND e.typname = ANY(%s)
                AND e.typnamespace = 'pg_catalog'::regnamespace)
FROM cols
JOIN pg_class c ON c.oid = cols.attrelid AND c.relkind = 'r'
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type b ON b.oid = cols.base
JOIN pg_type e ON e.oid = CASE WHEN b.typlen = -1 AND b.typelem <> 0 THEN b.typelem ELSE b.oid END
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
GROUP BY 1, 2
"""

_LO_FIRST_SQL = """
SELECT m.oid, length(x.c), md5(x.c)
FROM pg_largeobject_metadata m, LATERAL (SELECT lo_get(m.oid, 0, %s::int) AS c) x
ORDER BY m.oid
"""


@dataclass
class Inventory:
    """What a database holds, by kind; ``not_dumped``: unlogged relations of a server in
    recovery (a hot standby), whose data pg_dump cannot read and does not write."""

    tables: list[tuple[str, str, int]] = field(default_factory=list)
    sequences: list[TableKey] = field(default_factory=list)
    matviews: list[TableKey] = field(default_factory=list)
    not_dumped: list[TableKey] = field(default_factory=list)
    in_recovery: bool = False
    #: how each table is digested (absent: ``text``)
    methods: dict[TableKey, Method] = field(default_factory=dict)


def in_recovery(conn: Conn) -> bool:
    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    return bool(row and row[0])


def inventory(conn: Conn) -> Inventory:
    inv = Inventory(in_recovery=in_recovery(conn))
    for schema, name, kind, persistence, pages in conn.execute(RELATIONS_SQL).fetchall():
        key = (text(schema), text(name))
        if inv.in_recovery and text(persistence) == "u" and text(kind) in ("r", "S"):
            inv.not_dumped.append(key)
        elif text(kind) == "r":
            inv.tables.append((*key, int(str(pages))))
        elif text(kind) == "S":
            inv.sequences.append(key)
        else:
            inv.matviews.append(key)
    if conn.info.server_version >= 140000:  # hash_record_extended
        for schema, name, hashable in conn.execute(RECORD_HASHABLE_SQL, (HASHABLE_TYPES,)):
            if hashable:
                inv.methods[(text(schema), text(name))] = "record"
    return inv


# every setting in one round trip; ``is_local``: for the current transaction only
_SETTINGS_SQL = """
SELECT set_config(s.name, s.value, %s) FROM unnest(%s::text[], %s::text[]) AS s(name, value)
"""


def apply_settings(conn: Conn, *, local: bool) -> None:
    """SESSION_SETTINGS on ``conn``: for the session, or (``local``) for the transaction
    it is in."""
    names, values = list(SESSION_SETTINGS), list(SESSION_SETTINGS.values())
    conn.execute(_SETTINGS_SQL, (local, names, values))


def _prepare(conn: Conn, snapshot: str | None) -> None:
    apply_settings(conn, local=False)
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    if snapshot is not None:
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))


#: below this much table data (pg_table_size, the backup's size estimate), a backup's
#: digests run on its snapshot connection: another connection (a server process to
#: start, the snapshot to import) costs more than reading a few MiB in parallel saves
SMALL_DATABASE_BYTES = 16 * 1024 * 1024


def digest_connections(data_bytes: int | None, jobs: int) -> int:
    """Pure: how many connections of their own a backup's digests use; 0: none, they
    run on the snapshot connection (a small database; an unknown size is not small)."""
    if data_bytes is not None and data_bytes < SMALL_DATABASE_BYTES:
        return 0
    return max(1, jobs)


_ROW_DIGEST: dict[Method, str] = {
    "record": "hash_record_extended(ROW(t.*), 0)",
    "text": "('x' || left(md5(ROW(t.*)::text), 16))::bit(64)::bigint",
}


def table_content(conn: Conn, schema: str, name: str, method: Method) -> TableContent:
    query = sql.SQL("SELECT count(*), coalesce(sum({}), 0)::text FROM ONLY {}.{} AS t").format(
        sql.SQL(_ROW_DIGEST[method]), sql.Identifier(schema), sql.Identifier(name)
    )
    row = conn.execute(query).fetchone()
    assert row is not None
    return TableContent.model_validate(
        {
            "schema": schema,
            "name": name,
            "rows": int(str(row[0])),
            "sum64": text(row[1]),
            "method": method,
        }
    )


def sequence_value(conn: Conn, schema: str, name: str) -> SequenceValue:
    query = sql.SQL("SELECT last_value, is_called FROM {}.{}").format(
        sql.Identifier(schema), sql.Identifier(name)
    )
    row = conn.execute(query).fetchone()
    assert row is not None
    return SequenceValue.model_validate(
        {"schema": schema, "name": name, "last_value": row[0], "is_called": row[1]}
    )


def large_objects(conn: Conn) -> list[LargeObjectContent]:
    """Every large object's size and digest, streamed (a server-side cursor, 1 MiB
    chunks): bounded memory whatever their number and size."""
    out: list[LargeObjectContent] = []
    with conn.cursor(name="backdrill_large_objects") as listing:
        listing.execute(_LO_FIRST_SQL, (LO_CHUNK,))
        for oid, length, md5 in listing:
            digest = hashlib.sha256()
            size = int(str(length or 0))
            digest.update(text(md5).encode())
            last = size
            while last == LO_CHUNK:
                row = conn.execute(
                    "SELECT length(c), md5(c) FROM lo_get(%s::oid, %s::bigint, %s::int) AS c",
                    (oid, size, LO_CHUNK),
                ).fetchone()
                assert row is not None
                last = int(str(row[0] or 0))
                if last:
                    size += last
                    digest.update(text(row[1]).encode())
            out.append(LargeObjectContent(oid=int(str(oid)), size=size, sha256=digest.hexdigest()))
    return out


class _Collected:
    """The tasks of one computation (tables largest first) and what they found; the
    tasks may run on several connections at once."""

    def __init__(self, inv: Inventory, methods: Mapping[TableKey, Method] | None) -> None:
        self.tables: list[TableContent] = []
        self.sequences: list[SequenceValue] = []
        self.objects: list[LargeObjectContent] = []
        self.tasks: queue.SimpleQueue[Callable[[Conn], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        chosen = {**inv.methods, **(methods or {})}

        def add_table(schema: str, name: str) -> Callable[[Conn], None]:
            def run(conn: Conn) -> None:
                found = table_content(conn, schema, name, chosen.get((schema, name), "text"))
                with self._lock:
                    self.tables.append(found)

            return run

        def add_sequences(conn: Conn) -> None:
            found = [sequence_value(conn, s, n) for s, n in inv.sequences]
            with self._lock:
                self.sequences.extend(found)

        def add_large_objects(conn: Conn) -> None:
            found = large_objects(conn)
            with self._lock:
                self.objects.extend(found)

        self.tasks.put(add_large_objects)
        for schema, name, _pages in sorted(inv.tables, key=lambda t: -t[2]):
            self.tasks.put(add_table(schema, name))
        self.tasks.put(add_sequences)

    def run_on(self, conn: Conn, errors: list[BaseException]) -> None:
        """Take tasks and run them on ``conn`` until none is left (or one failed)."""
        while not errors:
            try:
                task = self.tasks.get_nowait()
            except queue.Empty:
                return
            task(conn)

    def facts(self) -> ContentFacts:
        return ContentFacts(
            tables=sorted(self.tables, key=lambda t: t.key),
            large_objects=sorted(self.objects, key=lambda o: o.oid),
            sequences=sorted(self.sequences, key=lambda s: s.key),
        )


def _failure(exc: BaseException) -> PostgresError:
    if isinstance(exc, PostgresError):
        return exc
    return PostgresError(f"computing the content digests failed: {first_line(exc)}")


def compute_content_in_snapshot(conn: Conn, inv: Inventory) -> ContentFacts:
    """The content facts of ``inv`` read on ``conn``, which is in the transaction whose
    snapshot the dump imported (a backup of a small database: digest_connections); the
    session settings hold for that transaction only. PostgresError on any failure."""
    collected = _Collected(inv, None)
    try:
        apply_settings(conn, local=True)
        collected.run_on(conn, [])
    except Exception as exc:
        raise _failure(exc) from None
    return collected.facts()


def compute_content(
    params: ConnParams,
    inv: Inventory,
    *,
    snapshot: str | None = None,
    workers: int = 2,
    methods: Mapping[TableKey, Method] | None = None,
) -> ContentFacts:
    """The content facts of the tables and sequences of ``inv`` and of every large
    object, read through ``workers`` connections (each importing ``snapshot`` if
    given); each table digested by its method in ``methods`` (the manifest's, when
    verifying) or else in ``inv``. PostgresError on any failure."""
    collected = _Collected(inv, methods)

    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with params.connect() as conn:
                _prepare(conn, snapshot)
                collected.run_on(conn, errors)
                conn.execute("ROLLBACK")
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, name=f"content-{i}", daemon=True)
        for i in range(max(1, workers))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise _failure(errors[0])
    return collected.facts()
