"""glibc's malloc with a fixed mmap threshold, for a long run that allocates and frees
buffers of every size from several threads (``backup files``).

By default glibc raises its mmap threshold (up to 32 MiB) to the size of each mapped
block that is freed. After the first one (a 1 MiB read buffer did it; a large spool
would), every later buffer of a file's content (read, spooled, compressed, copied: up
to a few MiB) comes from the heap or a thread's arena, where the long-lived blocks
allocated among them (SQLite's pages, Python objects) pin the space they free: the
resident size grows with the count of files, not with what is in use (measured:
glibc's free bytes 26 MB after 62,500 files, 57 MB after 250,000; docs/benchmarks.md).
Setting the threshold, to glibc's own default, turns that adjustment off: a block of
128 KiB or more is mapped and unmapped on its own, and the free space at an arena's
top is trimmed.
"""

from __future__ import annotations

import ctypes

#: mallopt's parameter number (malloc.h)
M_MMAP_THRESHOLD = -3
#: glibc's default threshold, kept, but no longer raised
MMAP_THRESHOLD = 128 * 1024


def fix_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold for the rest of the process; False where the C library
    has no ``mallopt`` (not glibc): nothing to do there."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
