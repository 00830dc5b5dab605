"""Encryption at rest: every stored object of an encrypted repository is ciphertext
(no row of the database readable in it); drill, restore and verify --read-data work
with the right identity and exit 3 with one line with a wrong or missing one; SSE
options reach S3."""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable
from pathlib import Path

import pyrage
import pytest

from backdrill.pg.connection import ConnParams
from backdrill.repository.crypto import FRAME, Decryptor, EncryptingSink, Keys
from backdrill.runtime.errors import ConfigError, IntegrityError
from backdrill.sample.odoo import SampleInfo
from conftest import drop_database
from helpers.age import encrypted
from helpers.cli import Cli, Repo, SampleCli, write_config
from helpers.repo import _bucket_prefix, _client, list_keys, manifests, read_object

pytestmark = pytest.mark.reliability
KNOWN_ROW = b"partner7@example.com"


EncryptedCli = Callable[[Repo, str, Path | None], Cli]


@pytest.fixture
def encrypted_cli(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    sample: SampleInfo,
    work_dir: Path,
) -> EncryptedCli:
    """``encrypted_cli(repo, recipient, identity_file)``: the CLI on a new configuration
    of ``sample`` on ``repo`` encrypted to ``recipient`` (read with ``identity_file``,
    if not None), drills working in ``work_dir``."""

    def configure(repo: Repo, recipient: str, identity_file: Path | None) -> Cli:
        config = write_config(
            tmp_path / f"c-{secrets.token_hex(2)}.yaml",
            pg,
            encrypted(repo, recipient, identity_file),
            databases=[sample.database],
            drill={"work_dir": str(work_dir), "report_dir": str(tmp_path / "reports")},
        )
        return Cli(capsys, config)

    return configure


def test_encrypted_repository_holds_no_plaintext_and_restores_with_the_identity(
    encrypted_cli: EncryptedCli,
    pg: ConnParams,
    sample: SampleInfo,
    repo: Repo,
    age_keys: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recipient, identity_file = age_keys
    # backups need the public key only
    cli_writer_config = encrypted_cli(repo, recipient, None)
    assert cli_writer_config("backup", "db").code == 0
    assert cli_writer_config("verify", "--all").code == 0
    keys = list_keys(repo)
    assert any(k.endswith("dump.pgdump.zst") for k in keys)
    for key in keys:
        data = read_object(repo, key)
        assert KNOWN_ROW not in data, key
        assert b"res_partner" not in data or key.startswith("locks/"), key
    (manifest,) = manifests(repo)
    assert manifest["tables"] == [] and "sealed" in manifest
    assert manifest["encryption"] == {"scheme": "age-frames-v1"}
    assert manifest["database"] == sample.database  # listing and retention still work
    listed = cli_writer_config("list", "--json")
    assert listed.code == 0 and manifest["id"] in listed.out

    cli_reader_config = encrypted_cli(repo, recipient, identity_file)
    verified = cli_reader_config("verify", "--all", "--read-data")
    assert verified.code == 0, verified.err
    drill = cli_reader_config("drill", "run")
    assert drill.code == 0, drill.err
    target = f"restored_{secrets.token_hex(3)}"
    monkeypatch.setenv("PGPASSWORD", pg.password or "")
    dsn = f"host={pg.host} port={pg.port} user={pg.user} dbname={target} sslmode=disable"
    try:
        restored = cli_reader_config("restore", "db", "--to", dsn)
        assert restored.code == 0, restored.err
        assert "row counts match the manifest" in restored.out
        with pg.with_db(target).connect() as conn:
            row = conn.execute(
                "SELECT count(*) FROM res_partner WHERE email = %s", (KNOWN_ROW.decode(),)
            ).fetchone()
        assert row == (1,)
    finally:
        drop_database(pg, target)
    # the identity also comes from the environment
    monkeypatch.setenv("BACKDRILL_AGE_IDENTITY", identity_file.read_text())
    by_env = cli_writer_config("verify", "--all", "--read-data")
    assert by_env.code == 0, by_env.err


@pytest.mark.parametrize("command", ["drill", "restore", "verify"])
@pytest.mark.parametrize("which", ["wrong", "missing"])
def test_a_wrong_or_missing_identity_exits_3_with_one_line(
    tmp_path: Path,
    encrypted_cli: EncryptedCli,
    pg: ConnParams,
    local_repo: Repo,
    age_keys: tuple[str, Path],
    work_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    which: str,
) -> None:
    recipient, _right = age_keys
    assert encrypted_cli(local_repo, recipient, None)("backup", "db").code == 0
    other = tmp_path / "other-identity.txt"
    other.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    cli = encrypted_cli(local_repo, recipient, other if which == "wrong" else None)
    monkeypatch.setenv("PGPASSWORD", pg.password or "")
    dsn = f"host={pg.host} port={pg.port} user={pg.user} dbname=never_made sslmode=disable"
    args = {
        "drill": ["drill", "run"],
        "restore": ["restore", "db", "--to", dsn],
        "verify": ["verify", "--all", "--read-data"],
    }[command]
    result = cli(*args)
    assert result.code == 3, result.err
    errors = result.error_records
    assert len(errors) == 1
    expected = "is not one of the recipients" if which == "wrong" else "no identity is configured"
    assert expected in errors[0]["message"], errors[0]
    assert list(work_dir.iterdir()) == []
    assert other.read_text().strip() not in result.err + result.out


def test_frames_detect_reordering_truncation_and_tampering() -> None:
    key = pyrage.x25519.Identity.generate()
    keys = Keys([key.to_public()], None, None)
    out = io.BytesIO()
    sink = EncryptingSink(out, keys)
    payload = secrets.token_bytes(FRAME * 2 + 1000)
    for i in range(0, len(payload), 300_000):
        sink.write(payload[i : i + 300_000])
    sink.close()
    blob = out.getvalue()
    assert payload[:1000] not in blob
    dec = Decryptor([key], "x")
    assert dec.feed(blob) == payload
    dec.finish()
    with pytest.raises(IntegrityError, match="truncated"):
        cut = Decryptor([key], "x")
        cut.feed(blob[: len(blob) // 2])
        cut.finish()
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 1
    with pytest.raises(IntegrityError, match="fails authentication"):
        Decryptor([key], "x").feed(bytes(flipped))


def test_sse_options_are_passed_to_s3(sample_cli: SampleCli, proxied_repo: Repo) -> None:
    repo = Repo(proxied_repo.url, {**proxied_repo.storage, "sse": {"mode": "SSE-S3"}})
    cli = sample_cli(repo)
    assert cli("backup", "db").code == 0
    bucket, root = _bucket_prefix(repo)
    client = _client(proxied_repo)
    for key in list_keys(repo, "db/"):
        head = client.head_object(Bucket=bucket, Key=f"{root}/{key}")
        assert head.get("ServerSideEncryption") == "AES256", key


def test_rotated_identity_file_with_old_and_new_keys_reads_both_generations(
    tmp_path: Path,
) -> None:
    """Rotating the age key (RUNBOOK_Secrets_Management): backups sealed to the old
    recipient stay readable while the identity file holds the old key beside the new."""
    from backdrill.config.model import EncryptionConfig
    from backdrill.repository.crypto import decrypt_bytes, encrypt_bytes

    old, new = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    before = encrypt_bytes(b"sealed before the rotation", Keys([old.to_public()], None, None))
    after = encrypt_bytes(b"sealed after the rotation", Keys([new.to_public()], None, None))
    path = tmp_path / "age-identity.txt"
    path.write_text(
        f"# new, since the rotation\n{new}\n# old: keep until its backups expire\n{old}\n"
    )
    cfg = EncryptionConfig(recipients=[str(new.to_public())], identity_file=path)
    identities = Keys.from_config(cfg).identities("the backup")
    assert decrypt_bytes(before, identities, "old") == b"sealed before the rotation"
    assert decrypt_bytes(after, identities, "new") == b"sealed after the rotation"
    # without the old key, the old generation is unreadable: the reason to keep it
    path.write_text(f"{new}\n")
    only_new = Keys.from_config(cfg).identities("the backup")
    with pytest.raises(ConfigError, match="not one of the recipients"):
        decrypt_bytes(before, only_new, "old")
