"""The data offsets a streamed custom-format dump lacks, found while it downloads
(backdrill/pg/dumpindex.py): exactly the offsets pg_dump writes into a seekable file,
or none at all when the dump is not one the indexer knows."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from backdrill.pg.connection import ConnParams
from backdrill.pg.dumpindex import NO_DATA, POS_NOT_SET, POS_SET, DumpIndexer, parse_toc
from backdrill.sample.odoo import SampleInfo
from conftest import drop_database
from helpers.cli import Cli

TOC_READ = 4 * 1024 * 1024


def _dump(pg: ConnParams, pg_bin_dir: Path, database: str, dest: Path, *extra: str) -> None:
    """pg_dump -Fc -Z0 into ``dest`` through a pipe (as ``backup db`` runs it), or into
    the file itself when ``-f`` is among ``extra``."""
    env = {**os.environ, **pg.with_db(database).child_env()}
    argv = [str(pg_bin_dir / "pg_dump"), "--format=custom", *extra, database]
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE) as proc, dest.open("ab") as out:
        assert proc.stdout is not None
        shutil.copyfileobj(proc.stdout, out)
    assert proc.returncode == 0


def _offsets(path: Path) -> dict[int, tuple[int, int]]:
    """dump id -> (flag, offset) of every TOC entry."""
    head = path.read_bytes()[:TOC_READ]
    toc = parse_toc(head)
    return {
        e.dump_id: (e.flag, int.from_bytes(head[e.offset_field + 1 : e.offset_field + 9], "little"))
        for e in toc.entries
    }


def _index(path: Path, chunk: int) -> DumpIndexer:
    indexer = DumpIndexer()
    with path.open("rb") as f:
        while data := f.read(chunk):
            indexer.feed(data)
    return indexer


def _patch(path: Path, chunk: int) -> int:
    indexer = _index(path, chunk)
    data = path.read_bytes()
    patches = indexer.patches(len(data), data[-64:])
    with path.open("r+b") as f:
        for position, value in patches:
            f.seek(position)
            f.write(value)
    return len(patches)


@pytest.fixture
def odd_db(pg: ConnParams) -> Iterator[str]:
    """Tables whose data blocks are empty at the start, in the middle and at the end,
    rows of every size class, and text that looks like the markers."""
    name = f"idx_{secrets.token_hex(3)}"
    with pg.connect(autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    with pg.with_db(name).connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE a_empty (id int)")
        conn.execute("CREATE TABLE b_rows (id int, body text)")
        conn.execute(
            "INSERT INTO b_rows SELECT i, repeat(chr(1 + i % 126), i % 700) "
            "FROM generate_series(1, 5000) i"
        )
        conn.execute("CREATE TABLE c_empty (id int)")
        conn.execute("CREATE TABLE d_bytes (id int, data bytea)")
        conn.execute(
            "INSERT INTO d_bytes SELECT i, decode(repeat('00', 300) || '0a0000000000', 'hex') "
            "FROM generate_series(1, 300) i"
        )
        conn.execute("CREATE TABLE e_newlines (t text)")
        conn.execute(
            "INSERT INTO e_newlines SELECT E'line\\n\\r\\t' || i FROM generate_series(1, 99) i"
        )
        conn.execute("CREATE TABLE z_empty (id int)")
    yield name
    drop_database(pg, name)


@pytest.mark.parametrize("chunk", [977, 131072])
def test_a_piped_dump_gets_exactly_the_offsets_pg_dump_writes_into_a_file(
    pg: ConnParams, pg_bin_dir: Path, tmp_path: Path, shared_sample: SampleInfo, chunk: int
) -> None:
    seekable, piped = tmp_path / "seekable.pgdump", tmp_path / "piped.pgdump"
    _dump(pg, pg_bin_dir, shared_sample.database, seekable, "--compress=0", f"--file={seekable}")
    _dump(pg, pg_bin_dir, shared_sample.database, piped, "--compress=0")
    before = _offsets(piped)
    data_ids = [i for i, (flag, _) in before.items() if flag == POS_NOT_SET]
    assert len(data_ids) >= 10
    assert _patch(piped, chunk) == len(data_ids)
    assert _offsets(piped) == _offsets(seekable)
    assert {flag for flag, _ in _offsets(piped).values()} == {POS_SET, NO_DATA}


def test_empty_blocks_and_marker_like_data_are_indexed_and_restore_in_parallel(
    pg: ConnParams, pg_bin_dir: Path, tmp_path: Path, odd_db: str
) -> None:
    seekable, piped = tmp_path / "seekable.pgdump", tmp_path / "piped.pgdump"
    _dump(pg, pg_bin_dir, odd_db, seekable, "--compress=0", f"--file={seekable}")
    _dump(pg, pg_bin_dir, odd_db, piped, "--compress=0")
    assert _patch(piped, 4096) == 6
    assert _offsets(piped) == _offsets(seekable)
    target = f"{odd_db}_restored"
    with pg.connect(autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {target}")
    try:
        env = {**os.environ, **pg.with_db(target).child_env()}
        subprocess.run(
            [pg_bin_dir / "pg_restore", "--jobs=2", "--exit-on-error", f"--dbname={target}", piped],
            env=env,
            check=True,
        )
        query = "SELECT (SELECT count(*) FROM b_rows), (SELECT sum(length(data)) FROM d_bytes)"
        with pg.with_db(target).connect() as conn:
            assert conn.execute(query).fetchone() == (5000, 300 * 306)
    finally:
        drop_database(pg, target)


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ((), "compressed data blocks"),
        (("--compress=0", "--file=SELF"), "already set"),
    ],
    ids=["compressed", "seekable"],
)
def test_dumps_it_cannot_or_need_not_index_are_left_alone(
    pg: ConnParams,
    pg_bin_dir: Path,
    tmp_path: Path,
    shared_sample: SampleInfo,
    extra: tuple[str, ...],
    why: str,
) -> None:
    dump = tmp_path / "dump.pgdump"
    _dump(
        pg, pg_bin_dir, shared_sample.database, dump, *(e.replace("SELF", str(dump)) for e in extra)
    )
    indexer = _index(dump, 65536)
    data = dump.read_bytes()
    assert indexer.patches(len(data), data[-64:]) == []
    assert why in indexer.why


def test_garbage_unknown_versions_and_truncated_dumps_give_no_patches(
    pg: ConnParams, pg_bin_dir: Path, tmp_path: Path, shared_sample: SampleInfo
) -> None:
    garbage = DumpIndexer()
    garbage.feed(b"not a dump at all" * 100)
    assert garbage.patches(1700, b"") == [] and "not a pg_dump" in garbage.why
    dump = tmp_path / "dump.pgdump"
    _dump(pg, pg_bin_dir, shared_sample.database, dump, "--compress=0")
    data = dump.read_bytes()
    newer = bytearray(data)
    newer[6] = 15  # archive version 1.15 (pg_dump 16): not one the indexer knows
    unknown = DumpIndexer()
    unknown.feed(bytes(newer))
    assert unknown.patches(len(newer), data[-64:]) == [] and "version 1.15" in unknown.why
    for cut in (len(data) // 2, len(data) - 3):
        indexer = DumpIndexer()
        indexer.feed(data[:cut])
        assert indexer.patches(cut, data[cut - 64 : cut]) == [], cut


def test_a_downloaded_backup_is_indexed_and_the_drill_restores_it(drill_cli: Cli) -> None:
    assert drill_cli("backup", "db").code == 0
    drill = drill_cli("drill", "run")
    assert drill.code == 0, drill.err
    assert re.search(r"dump indexed: \d+ data blocks located", drill.err), drill.err
