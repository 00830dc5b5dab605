"""age keys for the encryption tests, and a repository encrypted with them."""

from __future__ import annotations

from pathlib import Path

import pyrage

from helpers.cli import Repo


def age_identity(directory: Path) -> tuple[str, Path]:
    """A new recipient (public key) and the file in ``directory`` holding its identity."""
    key = pyrage.x25519.Identity.generate()
    path = directory / "age-identity.txt"
    path.write_text(f"# backdrill test identity\n{key}\n")
    return str(key.to_public()), path


def encrypted(repo: Repo, recipient: str, identity_file: Path | None = None) -> Repo:
    """``repo`` encrypting to ``recipient`` (and decrypting with ``identity_file``)."""
    encryption: dict[str, object] = {"recipients": [recipient]}
    if identity_file is not None:
        encryption["identity_file"] = str(identity_file)
    return Repo(repo.url, {**repo.storage, "encryption": encryption})
