"""Remove secrets from strings before they reach a log line, a report or an error."""

from __future__ import annotations

import re
from collections.abc import Iterable

_URL_USERINFO = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@"
)
_KV_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd|secret|token)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")

MASK = "***"


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask URL userinfo passwords, ``password=…`` pairs and every known secret value."""
    out = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    out = _KV_PASSWORD.sub(lambda m: f"{m.group(1)}={MASK}", out)
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        out = out.replace(secret, MASK)
    return out


class SecretRegistry:
    """Process-wide set of secret values, used by the log formatter and error printer."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def add(self, value: str | None) -> None:
        if value:
            self._values.add(value)

    def values(self) -> frozenset[str]:
        return frozenset(self._values)

    def redact(self, text: str) -> str:
        return redact_text(text, self._values)


SECRETS = SecretRegistry()
