"""Debian's Chromium, headless and offline: screenshots and the DOM after load."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def chromium_or_skip() -> str:
    found = next(
        (c for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None
    )
    if found is None:
        pytest.skip("Chromium is not installed (make system-deps installs Debian's chromium)")
    return found


def headless(chromium: str, profile: Path, *args: str) -> str:
    """Run Debian's Chromium headless, offline, as root; return its stdout."""
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout


def dom_after_load(chromium: str, profile: Path, page: Path) -> str:
    """The page's DOM as Chromium serializes it once loaded (scripts, if any, have run)."""
    return headless(chromium, profile, "--dump-dom", page.as_uri())
