"""Small zstd helpers for in-memory documents (snapshots, roles)."""

from __future__ import annotations

import zstandard

from backdrill.errors import IntegrityError


def compressed(data: bytes, level: int = 3) -> bytes:
    return bytes(zstandard.ZstdCompressor(level=level, write_checksum=True).compress(data))


def decompressed(data: bytes, where: str) -> bytes:
    try:
        return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(data))
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{where} is not a valid zstd stream: {exc}") from None
