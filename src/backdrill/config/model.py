"""Configuration: the models of the YAML file (README "Configuration"), validated by
pydantic. Secrets come from the environment (libpq's and AWS's own variables) or from
``*_file`` keys, never necessarily from the YAML. Finding, reading and parsing the file:
:mod:`backdrill.config.loading`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from backdrill.config.security import SecurityConfig
from backdrill.repository.layout import DEFAULT_SOURCE
from backdrill.runtime.errors import ConfigError
from backdrill.runtime.redact import SECRETS
from backdrill.runtime.retry import RetryPolicy


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_secret_file(path: Path, key: str) -> SecretStr:
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ValueError(f"cannot read {key} {path}: {exc.strerror}") from None
    if not value:
        raise ValueError(f"{key} {path} is empty")
    return SecretStr(value)


def _secret_from_file(model: _Model, field: str, *, exclusive: bool = False) -> None:
    """``<field>_file`` names a file holding the secret ``<field>``: read it into
    ``<field>`` (the models are frozen: set once, while validating). ``exclusive``: giving
    both is an error; else the file wins."""
    path: Path | None = getattr(model, f"{field}_file")
    if path is None:
        return
    if exclusive and getattr(model, field) is not None:
        raise ValueError(f"give either {field} or {field}_file, not both")
    object.__setattr__(model, field, _read_secret_file(path, f"{field}_file"))


class PostgresConfig(_Model):
    host: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    user: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = (
        None
    )
    databases: list[Annotated[str, Field(min_length=1)]] | Literal["all"] = Field(
        default_factory=list
    )
    maintenance_db: str = "postgres"
    bin_dir: Path | None = None
    connect_timeout: Annotated[int, Field(ge=1, le=600)] = 10

    @model_validator(mode="after")
    def _password_from_file(self) -> PostgresConfig:
        _secret_from_file(self, "password", exclusive=True)
        return self


class S3Options(_Model):
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    secret_access_key_file: Path | None = None
    session_token: SecretStr | None = None
    verify_tls: bool = True
    ca_bundle: Path | None = None
    addressing_style: Literal["path", "virtual", "auto"] = "path"

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_is_http(cls, value: str | None) -> str | None:
        if value is not None:
            parsed = urlparse(value)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _secret_from_file(self) -> S3Options:
        _secret_from_file(self, "secret_access_key", exclusive=True)
        return self


class ObjectLockConfig(_Model):
    mode: Literal["GOVERNANCE", "COMPLIANCE"]
    days: Annotated[int, Field(ge=1, le=36500)]


class RetryConfig(_Model):
    """Retries of transient storage faults (HTTP 5xx, throttling, resets, timeouts)."""

    attempts: Annotated[int, Field(ge=1, le=100)] = 8
    max_seconds: Annotated[float, Field(gt=0, le=3600)] = 90.0
    base_seconds: Annotated[float, Field(ge=0, le=60)] = 0.5
    max_wait_seconds: Annotated[float, Field(ge=0, le=600)] = 20.0
    #: after a failure, how long aborting the upload and releasing the lock may wait
    #: for the store to come back (an interrupt cuts this to seconds)
    cleanup_seconds: Annotated[float, Field(ge=0, le=3600)] = 300.0

    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            self.attempts, self.max_seconds, self.base_seconds, self.max_wait_seconds
        )


class EncryptionConfig(_Model):
    """Client-side encryption with age: backups are sealed to ``recipients`` (public
    keys); the identity (private key) is read only by restore, drill and verify
    --read-data, from ``identity_file`` or ``$BACKDRILL_AGE_IDENTITY``."""

    recipients: Annotated[
        list[Annotated[str, Field(pattern=r"^age1[0-9a-z]{58}$")]], Field(min_length=1)
    ]
    identity_file: Path | None = None


class SseConfig(_Model):
    """Server-side encryption of S3 objects, passed through to every write."""

    mode: Literal["SSE-S3", "SSE-KMS"]
    kms_key_id: str | None = None

    @model_validator(mode="after")
    def _kms_key_only_for_kms(self) -> SseConfig:
        if self.kms_key_id is not None and self.mode != "SSE-KMS":
            raise ValueError("kms_key_id needs mode SSE-KMS")
        return self


class StorageConfig(S3Options):
    url: str
    object_lock: ObjectLockConfig | None = None
    retry: RetryConfig = Field(default_factory=RetryConfig)
    encryption: EncryptionConfig | None = None
    sse: SseConfig | None = None
    part_size_mb: Annotated[int, Field(ge=5, le=5120)] = 8
    max_concurrency: Annotated[int, Field(ge=1, le=64)] = 4

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme == "s3":
            if not parsed.netloc:
                raise ValueError("s3 URL needs a bucket: s3://bucket/prefix")
        elif parsed.scheme == "file":
            if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
                raise ValueError("file URL needs an absolute path: file:///var/backups/backdrill")
        else:
            raise ValueError("must start with s3:// or file://")
        return value


#: a named PostgreSQL source (``sources:``): a repository key segment, a metrics label
SOURCE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class FilesConfig(_Model):
    source: str | None = None
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+$")] | None = None
    s3: S3Options | None = None


class RetentionConfig(_Model):
    days: Annotated[int, Field(ge=1, le=36500)] = 30
    min_keep: Annotated[int, Field(ge=1, le=10000)] = 7
    keep_daily: Annotated[int, Field(ge=0)] = 0
    keep_weekly: Annotated[int, Field(ge=0)] = 0
    keep_monthly: Annotated[int, Field(ge=0)] = 0
    grace_hours: Annotated[float, Field(ge=0)] = 24.0


class TargetsConfig(_Model):
    rpo_hours: Annotated[float, Field(gt=0)] = 24.0
    rto_hours: Annotated[float, Field(gt=0)] = 4.0


class SourceConfig(PostgresConfig):
    """One named PostgreSQL source of ``sources:``: its connection and databases, and
    optionally its own retention and targets (else the top-level ones)."""

    retention: RetentionConfig | None = None
    targets: TargetsConfig | None = None


class DrillConfig(_Model):
    sandbox: Literal["local", "docker", "server"] = "local"
    jobs: Literal["auto"] | Annotated[int, Field(ge=1, le=256)] = "auto"
    server_dsn: SecretStr | None = None
    server_dsn_file: Path | None = None
    report_dir: Path = Path("drill-reports")
    work_dir: Path | None = None
    #: object lock retention of evidence/ where the bucket has object lock enabled
    #: (retain until now + retention.days); elsewhere evidence is written without it
    evidence_lock: Literal["governance", "compliance", "off"] = "governance"
    #: Ed25519 private key (PEM or raw 32-byte seed) that signs every report
    signing_key_file: Path | None = None

    @model_validator(mode="after")
    def _dsn_from_file(self) -> DrillConfig:
        _secret_from_file(self, "server_dsn")
        return self

    @model_validator(mode="after")
    def _signing_key_readable(self) -> DrillConfig:
        """A bad key is found now, not after an hour of drill; the key is not kept."""
        if self.signing_key_file is not None:
            from backdrill.report.signing import load_signing_key

            try:
                load_signing_key(self.signing_key_file)
            except ConfigError as exc:
                raise ValueError(exc.message) from None
        return self


class BackupConfig(_Model):
    compression_level: Annotated[int, Field(ge=1, le=19)] = 1
    #: zstd worker threads beside the reading thread (benchmarks/: one worker leaves the
    #: database server's backend a core of its own on a 2-core host); 0: one per core
    compression_threads: Annotated[int, Field(ge=0, le=64)] = 1
    #: > 1: pg_dump's directory format with this many parallel jobs (large databases)
    jobs: Annotated[int, Field(ge=1, le=64)] = 1
    #: databases dumped at once by ``backup db`` (each its own lock, manifest, failure)
    parallel: Annotated[int, Field(ge=1, le=16)] = 1
    #: where --jobs backups stage the files pg_dump is writing (default: the temp dir)
    work_dir: Path | None = None
    globals: bool = True
    #: per table, large object and sequence, a digest of its content computed in the
    #: dump's snapshot, which drills and restores compare (false: rows counted only)
    content_digests: bool = True
    #: connections that compute the digests in parallel, each importing the snapshot
    content_digest_jobs: Annotated[int, Field(ge=1, le=16)] = 2


class NotifyConfig(_Model):
    webhook_url: SecretStr | None = None
    webhook_url_file: Path | None = None
    on: list[Literal["failure", "success"]] = Field(default_factory=lambda: ["failure"])  # type: ignore[arg-type]
    retry_seconds: Annotated[float, Field(gt=0, le=30)] = 30.0
    timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 10.0

    @model_validator(mode="after")
    def _url_from_file(self) -> NotifyConfig:
        _secret_from_file(self, "webhook_url")
        return self


class ServeConfig(_Model):
    listen: str = "127.0.0.1:9187"
    cache_seconds: Annotated[float, Field(ge=0, le=86400)] = 60.0
    #: a connection that sends nothing (or half a request) for this long is closed
    read_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 30
    #: open connections served at once; more wait in the listen backlog
    connection_limit: Annotated[int, Field(ge=1, le=10000)] = 100
    threads: Annotated[int, Field(ge=1, le=64)] = 4
    #: a TLS-terminating proxy fronts serve: send Strict-Transport-Security
    behind_tls: bool = False


class Config(_Model):
    ssot: Path | None = None
    postgres: PostgresConfig = Field(default_factory=PostgresConfig)
    #: named PostgreSQL sources beside (or instead of) the default one, ``postgres:``
    sources: dict[Annotated[str, Field(pattern=SOURCE_NAME_PATTERN)], SourceConfig] = Field(
        default_factory=dict, max_length=64
    )
    storage: StorageConfig
    files: FilesConfig = Field(default_factory=FilesConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    targets: TargetsConfig = Field(default_factory=TargetsConfig)
    drill: DrillConfig = Field(default_factory=DrillConfig)
    backup: BackupConfig = Field(default_factory=BackupConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    # set by backdrill.policy.ssot.resolve when `ssot:` is given
    _ssot: Any = PrivateAttr(default=None)
    _ssot_path: Path | None = PrivateAttr(default=None)
    _ssot_conflicts: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _default_source_not_named(self) -> Config:
        if DEFAULT_SOURCE in self.sources:
            raise ValueError(
                f"sources -> {DEFAULT_SOURCE}: the name {DEFAULT_SOURCE!r} is the top-level "
                "postgres: section; give this source another name"
            )
        return self

    def register_secrets(self) -> None:
        """Tell the log redactor about every secret value this config holds."""
        for secret in (
            self.postgres.password,
            *(source.password for source in self.sources.values()),
            self.storage.secret_access_key,
            self.storage.session_token,
            self.files.s3.secret_access_key if self.files.s3 else None,
            self.drill.server_dsn,
            self.notify.webhook_url,
        ):
            if secret is not None:
                SECRETS.add(secret.get_secret_value())
        for name in (
            "PGPASSWORD",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "BACKDRILL_AGE_IDENTITY",
        ):
            SECRETS.add(os.environ.get(name))
