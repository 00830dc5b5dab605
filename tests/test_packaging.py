"""The container image definition (no Docker engine runs here: read, not built)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_dockerfile_pins_pg_major_runs_non_root_and_checks_health_with_status() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:\$\{PYTHON_VERSION\}-slim-", text, re.M)
    assert re.search(r"^ARG PG_MAJOR=15$", text, re.M)
    assert '"postgresql-client-${PG_MAJOR}"' in text
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and not user[-1].startswith(("root", "0"))
    assert re.search(r"^ENTRYPOINT \[\"backdrill\"\]$", text, re.M)
    health = re.search(r"^HEALTHCHECK .*\n\s+CMD (.*)$", text, re.M)
    assert health and "backdrill" in health.group(1) and "status" in health.group(1)
    # Docker reserves exit 2; Nagios CRITICAL (2) must become unhealthy (1)
    assert "[ $? -le 1 ] || exit 1" in health.group(1)
