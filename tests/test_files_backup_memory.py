"""``backup files`` fixes glibc's mmap threshold. Left to itself, glibc raises the
threshold to the size of each mapped block freed, and from then on the buffers of file
contents come from its arenas, where the free space they leave stays pinned: the first
run's peak RSS grew with the count of files (docs/benchmarks.md, "Filestore at scale":
95 MB at 62,500 files, 135 MB at 250,000). At the scale of a test the growth is too
small to see, so the test checks the cause: after a backup, a block freed no longer
moves the threshold."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from backdrill.files.source import read_size
from backdrill.repository.streams import CHUNK
from helpers.cli import Repo, run_cli_script
from helpers.files import files_config, make_tree

#: runs the CLI, then asks glibc where a 16 MiB block comes from once a 30 MiB mapped
#: block was freed and the heap trimmed: mapped (MAPPED: its size) only while the
#: threshold is fixed; a dynamic one would have moved to 30 MiB (MAPPED 0: the heap)
CHILD = """
import ctypes, runpy, sys

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.malloc_trim.argtypes = [ctypes.c_size_t]
sys.argv = ["backdrill", *sys.argv[1:]]
try:
    runpy.run_module("backdrill", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
libc.free(libc.malloc(30 << 20))
libc.malloc_trim(0)
before = libc.mallinfo2().hblkhd
block = libc.malloc(16 << 20)
print("MAPPED", libc.mallinfo2().hblkhd - before, file=sys.stderr)
libc.free(block)
sys.exit(code)
"""


def _glibc() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not _glibc(), reason="glibc's malloc only")
def test_backup_files_fixes_the_mmap_threshold_of_glibc(tmp_path: Path, local_repo: Repo) -> None:
    make_tree(tmp_path / "src", count=20)
    config = files_config(tmp_path / "c.yaml", local_repo, str(tmp_path / "src"))
    result = run_cli_script(CHILD, "--config", str(config), "backup", "files", timeout=120)
    assert result.code == 0, result.err
    mapped = next(ln for ln in result.err.splitlines() if ln.startswith("MAPPED"))
    assert int(mapped.split()[1]) >= 16 << 20, result.err


def test_a_small_file_is_read_in_one_buffer_of_its_size() -> None:
    """A source asks for what is left of the listed size and one more byte (the end
    seen at once): never a 1 MiB buffer per small file, which raised glibc's threshold
    and, once fixed, would be mapped and unmapped per file."""
    assert read_size(1500, 0) == 1501
    assert read_size(1500, 1500) == 1
    assert read_size(5 * CHUNK, 0) == CHUNK
    assert read_size(5 * CHUNK, 4 * CHUNK + 10) == CHUNK - 9
    assert read_size(1500, 1600) == CHUNK  # grown since it was listed: read on
