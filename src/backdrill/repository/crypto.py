"""Client-side encryption at rest with age (``pyrage``), streaming in bounded memory.

pyrage encrypts whole byte strings, so a stream is cut into frames of at most
:data:`FRAME` bytes, each a complete age file (authenticated, to every recipient).
Inside each frame the plaintext starts with the frame's index and a last-frame flag, so
frames cannot be reordered, dropped, repeated or cut off at a frame boundary unnoticed::

    b"BDAGE1\\n" ( u32 length | age(u64 index | u8 last | data) )*

Public keys (recipients) are enough to write; the identity (private key) is needed
only to read: restore, drill and verify --read-data. A missing or wrong identity is a
ConfigError (exit 3); a frame that fails authentication is an IntegrityError (exit 4).
"""

from __future__ import annotations

import base64
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import pyrage

from backdrill.config.model import EncryptionConfig
from backdrill.runtime.errors import ConfigError, IntegrityError
from backdrill.runtime.redact import SECRETS

MAGIC = b"BDAGE1\n"
SCHEME = "age-frames-v1"
FRAME = 4 * 1024 * 1024
_HEAD = struct.Struct(">QB")
_LEN = struct.Struct(">I")
IDENTITY_ENV = "BACKDRILL_AGE_IDENTITY"
#: manifest fields sealed with the recipients: what the database holds
SEALED_FIELDS = ("tables", "odoo", "roles", "database_properties", "content", "not_dumped")


class Sink(Protocol):
    def write(self, data: bytes) -> object: ...


@dataclass(frozen=True)
class Keys:
    recipients: list[Any]
    identity_source: str | None
    _identity_file: Path | None

    @classmethod
    def from_config(cls, cfg: EncryptionConfig) -> Keys:
        try:
            recipients = [pyrage.x25519.Recipient.from_str(r) for r in cfg.recipients]
        except pyrage.RecipientError as exc:
            raise ConfigError(f"storage -> encryption -> recipients: {exc}") from None
        source = str(cfg.identity_file) if cfg.identity_file else None
        if source is None and os.environ.get(IDENTITY_ENV):
            source = IDENTITY_ENV
        return cls(recipients, source, cfg.identity_file)

    def identities(self, what: str) -> list[Any]:
        """The identity, read now (only readers need it); ConfigError when missing."""
        if self._identity_file is not None:
            try:
                text = self._identity_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"cannot read storage -> encryption -> identity_file "
                    f"{self._identity_file}: {exc.strerror}"
                ) from None
        else:
            text = os.environ.get(IDENTITY_ENV, "")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        if not lines:
            raise ConfigError(
                f"{what} is encrypted and no identity is configured",
                hint=f"set storage -> encryption -> identity_file or ${IDENTITY_ENV}",
            )
        for line in lines:
            SECRETS.add(line)
        try:
            return [pyrage.x25519.Identity.from_str(ln) for ln in lines]
        except pyrage.IdentityError:
            raise ConfigError(
                f"the age identity from {self.identity_source} is not a valid "
                "AGE-SECRET-KEY-1... line"
            ) from None


def keys_for(cfg: EncryptionConfig | None) -> Keys | None:
    return Keys.from_config(cfg) if cfg is not None else None


def _decrypt(ciphertext: bytes, identities: list[Any], what: str) -> bytes:
    try:
        return bytes(pyrage.decrypt(ciphertext, identities))
    except pyrage.DecryptError as exc:
        if "no matching keys" in str(exc).lower():
            raise ConfigError(
                f"cannot decrypt {what}: the configured identity is not one of the "
                "recipients it was encrypted to",
                hint="use the identity matching storage -> encryption -> recipients",
            ) from None
        raise IntegrityError(f"{what} fails authentication: {exc} (tampered or corrupt)") from None


class EncryptingSink:
    """Frames and encrypts what is written, forwarding ciphertext to ``sink``;
    :meth:`close` writes the last frame (always, even when empty)."""

    def __init__(self, sink: Sink, keys: Keys) -> None:
        self._sink = sink
        self._recipients = keys.recipients
        self._buffer = bytearray()
        self._index = 0
        self._sink.write(MAGIC)

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) > FRAME:
            self._emit(bytes(self._buffer[:FRAME]), last=False)
            del self._buffer[:FRAME]
        return len(data)

    def _emit(self, data: bytes, *, last: bool) -> None:
        ciphertext = pyrage.encrypt(_HEAD.pack(self._index, int(last)) + data, self._recipients)
        self._sink.write(_LEN.pack(len(ciphertext)) + ciphertext)
        self._index += 1

    def close(self) -> None:
        self._emit(bytes(self._buffer), last=True)
        self._buffer.clear()


class Decryptor:
    """Push-style: :meth:`feed` ciphertext, get plaintext; :meth:`finish` checks that
    the last frame arrived and nothing follows it."""

    def __init__(self, identities: list[Any], what: str) -> None:
        self._identities = identities
        self._what = what
        self._buffer = bytearray()
        self._magic_seen = False
        self._index = 0
        self._ended = False

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        out = bytearray()
        if not self._magic_seen:
            if len(self._buffer) < len(MAGIC):
                return b""
            if bytes(self._buffer[: len(MAGIC)]) != MAGIC:
                raise IntegrityError(f"{self._what} is not a backdrill encrypted object")
            del self._buffer[: len(MAGIC)]
            self._magic_seen = True
        while len(self._buffer) >= _LEN.size:
            (length,) = _LEN.unpack_from(self._buffer)
            if length > FRAME + 64 * 1024:
                raise IntegrityError(f"{self._what}: frame {self._index} has a bad length")
            if len(self._buffer) < _LEN.size + length:
                break
            frame = bytes(self._buffer[_LEN.size : _LEN.size + length])
            del self._buffer[: _LEN.size + length]
            if self._ended:
                raise IntegrityError(f"{self._what}: data after the last frame")
            plain = _decrypt(frame, self._identities, self._what)
            index, last = _HEAD.unpack_from(plain)
            if index != self._index:
                raise IntegrityError(f"{self._what}: frame {index} where {self._index} belongs")
            self._index += 1
            self._ended = bool(last)
            out += plain[_HEAD.size :]
        return bytes(out)

    def finish(self) -> None:
        if not self._ended or self._buffer:
            raise IntegrityError(f"{self._what} is truncated: its last frame is missing")


class DecryptingReader:
    """Pull-style reader over a ciphertext stream."""

    def __init__(self, stream: IO[bytes], identities: list[Any], what: str) -> None:
        self._stream = stream
        self._dec = Decryptor(identities, what)
        self._pending = bytearray()
        self._eof = False

    def read(self, size: int = -1) -> bytes:
        want = size if size >= 0 else 1 << 62
        while len(self._pending) < want and not self._eof:
            chunk = self._stream.read(1 << 20)
            if not chunk:
                self._eof = True
                self._dec.finish()
                break
            self._pending += self._dec.feed(chunk)
        out = bytes(self._pending[:want])
        del self._pending[:want]
        return out


def encrypt_bytes(data: bytes, keys: Keys) -> bytes:
    parts: list[bytes] = []

    class _Collect:
        def write(self, chunk: bytes) -> int:
            parts.append(chunk)
            return len(chunk)

    sink = EncryptingSink(_Collect(), keys)
    sink.write(data)
    sink.close()
    return b"".join(parts)


def decrypt_bytes(data: bytes, identities: list[Any], what: str) -> bytes:
    dec = Decryptor(identities, what)
    out = dec.feed(data)
    dec.finish()
    return out


def seal_fields(doc: dict[str, Any], keys: Keys) -> dict[str, Any]:
    """Move the sensitive fields of a manifest document into ``sealed`` (age, base64);
    what listing and retention need stays in clear."""
    secret = {name: doc.get(name) for name in SEALED_FIELDS}
    sealed = pyrage.encrypt(json.dumps(secret).encode(), keys.recipients)
    out = {k: v for k, v in doc.items() if k not in SEALED_FIELDS}
    out["tables"] = []
    out["sealed"] = base64.b64encode(sealed).decode()
    out["encryption"] = {"scheme": SCHEME}
    return out


def unseal_fields(doc: dict[str, Any], identities: list[Any], what: str) -> dict[str, Any]:
    try:
        sealed = base64.b64decode(doc["sealed"], validate=True)
    except (ValueError, TypeError) as exc:
        raise IntegrityError(f"{what}: the sealed fields are not base64: {exc}") from None
    secret = json.loads(_decrypt(sealed, identities, what))
    out = {k: v for k, v in doc.items() if k != "sealed"}
    out.update(secret)
    return out
