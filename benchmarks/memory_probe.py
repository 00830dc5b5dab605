"""Where the memory of a backdrill command goes, sampled while it runs: the CLI runs in
this process, and a thread records every ``--every`` seconds, as one JSON line each,
the resident size by kind of mapping (``[heap]``, anonymous: glibc's thread arenas and
mapped blocks, libraries), glibc's ``mallinfo2()`` (bytes in use, bytes free) and
SQLite's ``sqlite3_status64()`` (its caches); at the end, the sample at the peak.

Usage: ``.venv/bin/python -m benchmarks.memory_probe --out samples.jsonl -- --config
C.yaml backup files`` (what follows ``--`` is the CLI's arguments). glibc only.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import runpy
import sys
import threading
import time
from typing import Any

MiB = 1024 * 1024


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            *("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks"),
            *("uordblks", "fordblks", "keepcost"),
        )
    ]


def _mappings() -> dict[str, int]:
    """Resident KiB by kind of mapping, from ``/proc/self/smaps``."""
    kinds: dict[str, int] = {}
    kind = "anon"
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split(None, 1)[0]
            if not head.endswith(":"):  # a mapping's first line: range perms ... [path]
                parts = line.split()
                path = parts[5] if len(parts) > 5 else "anon"
                kind = path if path.startswith("[") or path == "anon" else "files"
            elif head == "Rss:":
                kinds[kind] = kinds.get(kind, 0) + int(line.split()[1])
    return kinds


def _status(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(ln.split()[1]) for ln in status if ln.startswith(field + ":"))


def sampler(out: Any, every: float, stop: threading.Event) -> None:
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    sqlite = ctypes.CDLL("libsqlite3.so.0")
    current, highest = ctypes.c_int64(), ctypes.c_int64()
    started = time.monotonic()
    while True:
        info = libc.mallinfo2()
        sqlite.sqlite3_status64(0, ctypes.byref(current), ctypes.byref(highest), 0)
        sample = {
            "seconds": round(time.monotonic() - started, 1),
            "rss_kib": _status("VmRSS"),
            "peak_kib": _status("VmHWM"),
            "mappings_kib": _mappings(),
            "malloc_in_use_mib": round(info.uordblks / MiB, 1),
            "malloc_free_mib": round(info.fordblks / MiB, 1),
            "malloc_mapped_mib": round(info.hblkhd / MiB, 1),
            "sqlite_mib": round(current.value / MiB, 1),
        }
        out.write(json.dumps(sample) + "\n")
        out.flush()
        if stop.wait(every):
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument("cli", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    cli = args.cli[1:] if args.cli[:1] == ["--"] else args.cli
    stop = threading.Event()
    with open(args.out, "w") as out:
        thread = threading.Thread(target=sampler, args=(out, args.every, stop), daemon=True)
        thread.start()
        sys.argv = ["backdrill", *cli]
        code: object = 0
        try:
            runpy.run_module("backdrill", run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            code = exc.code
        finally:
            stop.set()
            thread.join()
    with open(args.out) as samples:
        peak = max((json.loads(line) for line in samples), key=lambda s: s["rss_kib"])
    print(json.dumps(peak), file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
