"""The ``security:`` section of the config: the TLS minimum and the rotation period.

TLS 1.3 is the minimum on every connection backdrill opens with TLS (PostgreSQL, S3,
webhooks); ``tls_min_version: "1.2"`` lowers it, and ``config check`` and ``status`` flag
that as a deviation. Secret files (``*_file`` keys) older than ``rotation_days`` (a
quarter by default) are flagged by both too.
"""

from __future__ import annotations

import ssl
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

#: the standard: TLS 1.3 minimum everywhere
STANDARD_TLS: Final = "1.3"
#: the standard: secrets rotate every quarter
STANDARD_ROTATION_DAYS = 90
_SSL_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class SecurityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tls_min_version: Literal["1.2", "1.3"] = STANDARD_TLS
    rotation_days: Annotated[int, Field(ge=1, le=3650)] = STANDARD_ROTATION_DAYS

    @property
    def ssl_min(self) -> ssl.TLSVersion:
        """For Python's ``ssl.SSLContext.minimum_version``."""
        return _SSL_VERSIONS[self.tls_min_version]

    @property
    def libpq_min(self) -> str:
        """For libpq's ``ssl_min_protocol_version`` (``TLSv1.3``)."""
        return f"TLSv{self.tls_min_version}"

    def deviation(self) -> str | None:
        """Pure: what departs from the standard TLS minimum (None when nothing)."""
        if self.tls_min_version == STANDARD_TLS:
            return None
        return (
            f"security -> tls_min_version is {self.tls_min_version}: connections may use "
            f"TLS {self.tls_min_version}, below the standard minimum TLS {STANDARD_TLS}"
        )
