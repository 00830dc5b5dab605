"""Ed25519 signatures of drill reports (``drill.signing_key_file``).

The private key is a PEM file (``openssl genpkey -algorithm ed25519`` or
``backdrill drill keygen``) or a raw 32-byte seed; it is read when a report is signed
and never logged, printed or kept. Public keys travel as the base64 of their 32 raw
bytes (the form printed in reports); ``--public-key`` also takes a PEM public key or a
raw 32-byte file. Every error names the file, never its content.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from backdrill.runtime.errors import ConfigError, UsageError

#: a key file is a few hundred bytes; anything much larger is not one
MAX_KEY_FILE = 16 * 1024
#: prefixed to what is signed, so a report signature means nothing anywhere else
DOMAIN = b"backdrill drill report v1\n"
_RAW = serialization.Encoding.Raw
_RAW_PUBLIC = serialization.PublicFormat.Raw


def _read(path: Path, what: str, error: type[ConfigError] | type[UsageError]) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > MAX_KEY_FILE:
        raise error(f"{what} {path} is larger than {MAX_KEY_FILE} bytes: not a key file")
    return data


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The private key of ``drill.signing_key_file``: PEM (PKCS#8) or a raw 32-byte seed."""
    data = _read(path, "drill.signing_key_file", ConfigError)
    if len(data) == 32:
        return Ed25519PrivateKey.from_private_bytes(data)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(
            f"drill.signing_key_file {path} is neither an unencrypted PEM private key "
            "nor a raw 32-byte Ed25519 seed",
            hint="make one with `backdrill drill keygen --out FILE`",
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"drill.signing_key_file {path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key for ``--public-key``: PEM, raw 32 bytes, or the base64 text form."""
    data = _read(path, "public key", UsageError)
    if len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError):
            raise UsageError(f"public key {path} is not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise UsageError(f"public key {path} is not an Ed25519 key")
        return key
    parsed = parse_public_key(data.strip().decode("ascii", "replace"))
    if parsed is None:
        raise UsageError(
            f"public key {path} is not an Ed25519 public key (PEM, raw 32 bytes, or the "
            "base64 form printed in the reports)"
        )
    return parsed


def parse_public_key(text: str) -> Ed25519PublicKey | None:
    """The base64 text form, or None when it is not one (outside input: never raises)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    if len(raw) != 32:
        return None
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return None


def public_key_text(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(_RAW, _RAW_PUBLIC)).decode()


def sign(key: Ed25519PrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(DOMAIN + message)).decode()


def signature_holds(key: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64, from outside) signs ``message`` with ``key``."""
    try:
        raw = base64.b64decode(signature.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False
    try:
        key.verify(raw, DOMAIN + message)
    except InvalidSignature:
        return False
    return True


def same_key(a: Ed25519PublicKey, b: Ed25519PublicKey) -> bool:
    return a.public_bytes(_RAW, _RAW_PUBLIC) == b.public_bytes(_RAW, _RAW_PUBLIC)


def write_new_key(out: Path) -> str:
    """Create ``out`` (mode 0600, never over an existing file) holding a new PEM private
    key, and ``out.pub`` its PEM public key; return the public key's text form."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pub_path = out.with_name(out.name + ".pub")
    for path in (out, pub_path):
        if path.exists():
            raise UsageError(f"{path} exists: keygen never overwrites a key")
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        pub_path.write_bytes(public_pem)
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename}: {exc.strerror}") from None
    return public_key_text(key.public_key())
