"""pg/dumpdir.py against real processes and real inotify: a "pg_dump" here is a shell
script writing into the directory it is given (``--file=DIR``) the way pg_dump's
workers do, and ``store`` keeps what it is handed."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from backdrill.pg.dumpdir import DirectoryWatcher, dump_directory
from backdrill.runtime.errors import PostgresError
from helpers.waiting import wait_until


def _program(tmp_path: Path, body: str) -> list[str | Path]:
    script = tmp_path / "fake_pg_dump"
    script.write_text(
        '#!/bin/sh\nfor arg; do case "$arg" in --file=*) out="${arg#--file=}" ;; esac; done\n'
        + body
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return [script]


class Kept:
    """A store that keeps each file's bytes (the last stored copy wins, as in S3)."""

    def __init__(self, during: Callable[[str, BinaryIO, int], None] | None = None) -> None:
        self.calls: list[str] = []
        self.committed: list[tuple[str, bytes]] = []
        self.during = during

    def __call__(self, name: str, fh: BinaryIO, before_commit: Callable[[], None]) -> bytes:
        data = fh.read()
        self.calls.append(name)
        if self.during is not None:
            self.during(name, fh, self.calls.count(name))
        before_commit()
        self.committed.append((name, data))
        return data


def test_a_file_written_while_it_is_stored_is_stored_again_whole(tmp_path: Path) -> None:
    flag = tmp_path / "read-once"
    argv = _program(
        tmp_path,
        f"""printf first > "$out/1.dat"
while [ ! -e "{flag}" ]; do sleep 0.01; done
printf second >> "$out/1.dat"
printf toc > "$out/toc.dat"
""",
    )

    def during(name: str, fh: BinaryIO, nth: int) -> None:
        if name == "1.dat" and nth == 1:  # read "first": now let the writer go on
            flag.touch()
            wait_until(lambda: os.fstat(fh.fileno()).st_size == len("firstsecond"))

    store = Kept(during)
    stored = dump_directory(argv, dict(os.environ), 2, tmp_path, store)
    assert stored == [b"firstsecond", b"toc"]
    assert store.calls == ["1.dat", "1.dat", "toc.dat"]
    assert store.committed == [("1.dat", b"firstsecond"), ("toc.dat", b"toc")]  # never "first"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("backdrill-")] == []


def test_a_file_written_again_after_it_was_stored_fails_the_dump(tmp_path: Path) -> None:
    # one writer holds 1.dat open while another closes it: stored and deleted, it is
    # then written through the open descriptor; nothing of it is left on disk at exit
    argv = _program(
        tmp_path,
        """exec 3>>"$out/1.dat"
printf half >> "$out/1.dat"
while [ -e "$out/1.dat" ]; do sleep 0.01; done
printf rest >&3
exec 3>&-
sleep 0.3
printf toc > "$out/toc.dat"
""",
    )
    store = Kept()
    with pytest.raises(PostgresError, match=r"pg_dump wrote '1.dat' again after it was stored"):
        dump_directory(argv, dict(os.environ), 2, tmp_path, store)
    assert "toc.dat" not in store.calls
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("backdrill-")] == []


@pytest.mark.slow
def test_a_file_held_open_is_stored_once_its_writer_closed_it(tmp_path: Path) -> None:
    argv = _program(
        tmp_path,
        """{ printf a; sleep 0.3; printf b; sleep 0.3; printf c; } > "$out/2.dat"
printf blob > "$out/blob_7.dat"
printf 'entry' > "$out/blobs.toc"
sleep 0.5
printf toc > "$out/toc.dat"
""",
    )
    store = Kept()
    stored = dump_directory(argv, dict(os.environ), 2, tmp_path, store)
    assert store.calls.count("2.dat") == 1
    assert stored[store.calls.index("2.dat")] == b"abc"
    assert sorted(store.calls[:2]) == ["2.dat", "blob_7.dat"]  # while it ran
    assert store.calls[2:] == ["blobs.toc", "toc.dat"]  # after it exited, toc.dat last


def test_a_directory_that_cannot_be_watched_degrades_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), DirectoryWatcher(tmp_path / "missing") as watcher:
        assert watcher.take_ready(0.01) is None
    assert watcher.degraded is not None and "No such file" in watcher.degraded
    assert "stored after it exits" in caplog.text
