#!/usr/bin/env python3
"""The design map's CI gate: ``python scripts/validate_enterprise_standards.py [--root DIR]``.

A thin wrapper around ``backdrill standards check`` (exit 0 when every check passes,
1 naming each failure). Works from a checkout without installing backdrill, as long as
its dependencies are importable.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from backdrill.cli.app import main  # noqa: E402

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--root" not in args:
        args = ["--root", str(REPO), *args]
    sys.exit(main(["--log-format", "text", "standards", "check", *args]))
