"""Throwaway PostgreSQL servers for restore drills, behind one interface.

``local`` (initdb + pg_ctl here), ``docker`` (testcontainers) and ``server`` (a scratch
database on an existing server). Each is a context manager that always tears down,
unless asked to keep it.
"""

from __future__ import annotations

from backdrill.sandbox.base import Sandbox, SandboxInfo
from backdrill.sandbox.factory import open_sandbox

__all__ = ["Sandbox", "SandboxInfo", "open_sandbox"]
