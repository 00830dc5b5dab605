"""One exception hierarchy, each class carrying its exit code (README "Exit codes").

Library code raises these; only the CLI entry point turns them into an exit code and
one line on stderr. Messages must never contain secrets: build them from redacted
values (see :mod:`backdrill.runtime.redact`).
"""

from __future__ import annotations


class BackdrillError(Exception):
    """Base of every expected error. ``exit_code`` is what the process exits with."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class GoalNotMet(BackdrillError):
    """The work ran but failed its goal: a drill check failed or a target was missed."""

    exit_code = 1


class Refused(BackdrillError):
    """A safety rule stopped the work before it began (e.g. a non-empty restore target)."""

    exit_code = 1


class UsageError(BackdrillError):
    """The command line asks for something ambiguous or impossible."""

    exit_code = 2


class ConfigError(BackdrillError):
    """The configuration is missing, malformed or inconsistent."""

    exit_code = 3


class IntegrityError(BackdrillError):
    """Checksum mismatch, missing or unreadable object, corrupt archive or manifest."""

    exit_code = 4


class ExternalServiceError(BackdrillError):
    """PostgreSQL, storage or a sandbox failed (after retries)."""

    exit_code = 5


class PostgresError(ExternalServiceError):
    """PostgreSQL or one of its programs failed."""


class StorageError(ExternalServiceError):
    """The storage backend failed."""


class SandboxError(ExternalServiceError):
    """The throwaway PostgreSQL of a drill could not be provisioned or used."""


class NotFound(IntegrityError):
    """A backup, snapshot or object that was asked for does not exist."""


class LockHeld(BackdrillError):
    """Another run holds the repository lock."""

    exit_code = 6


class Interrupted(BaseException):
    """SIGINT (130) or SIGTERM (143) arrived. A BaseException, like KeyboardInterrupt,
    so that no ``except Exception`` swallows it on its way up through the clean-up."""

    def __init__(self, signum: int) -> None:
        import signal

        self.signal_name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signal_name}")
        self.exit_code = 128 + signum
