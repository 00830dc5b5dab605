"""Evidence that cannot be quietly rewritten: the digests of report.md and report.html in
report.json, Ed25519 signatures checked with ``--public-key``, and object lock retention
of evidence/ where the bucket has it. Real drills, real PostgreSQL, moto over HTTP."""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from backdrill.config.model import StorageConfig
from backdrill.pg.connection import ConnParams
from backdrill.report.evidence import StoredReport, evidence_lock
from backdrill.report.evidence_verify import verify_rendered, verify_signatures
from backdrill.report.model import (
    content_digest,
    parse_report,
    report_digest,
    seal,
    signed_message,
)
from backdrill.report.signing import load_public_key, load_signing_key, public_key_text, sign
from backdrill.runtime.errors import ConfigError, IntegrityError, StorageError, UsageError
from backdrill.sample.odoo import SampleInfo
from backdrill.storage import open_repository
from backdrill.storage.base import Capabilities, Retention
from conftest import object_lock_bucket, s3_client, s3_repo
from helpers.backed import BackUp
from helpers.cli import Cli, Repo, Result, run_cli, write_config
from helpers.repo import delete_object, list_keys, read_object, write_object
from helpers.seed import drill_report

RETENTION_DAYS = 9


def configured(back_up: BackUp, repo: Repo, database: str, **sections: Any) -> Path:
    """A config with one committed backup of ``database``."""
    return back_up(repo, database, retention={"days": RETENTION_DAYS}, **sections).config


def drill_ids(repo: Repo) -> list[str]:
    return sorted(k.split("/")[1] for k in list_keys(repo, "evidence/") if k.endswith(".json"))


def history(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> Result:
    cli = Cli(capsys, config)
    return cli("drill", "history", "--verify", *args)


def messages(result: Result) -> list[str]:
    return [json.loads(ln)["message"] for ln in result.err.splitlines() if ln.startswith('{"')]


# -- report.md and report.html under report.json's digests --------------------------------


def test_history_verify_names_the_drill_whose_report_html_or_md_was_edited(
    back_up: BackUp, capsys: pytest.CaptureFixture[str], sample: SampleInfo, repo: Repo
) -> None:
    """A failed drill's verdict edited from FAIL into PASS in report.html (and in
    report.md) is caught, on both backends; the html shows the digest its report.json
    records, and report.json the sha256 of each page."""
    config = configured(back_up, repo, sample.database, targets={"rto_hours": 0.00001})
    cli = Cli(capsys, config)
    ran = cli("drill", "run")
    assert ran.code == 1, ran.err  # the RTO target is missed: a FAIL to be hidden
    lock_lines = [m for m in messages(ran) if "object lock" in m]
    assert len(lock_lines) == 1  # said once
    if repo.is_s3:
        assert "object lock is not available" in lock_lines[0]
        assert "object lock is not enabled on the bucket" in lock_lines[0]
    else:
        assert "a local directory has no object lock" in lock_lines[0]
    (drill_id,) = drill_ids(repo)
    doc = json.loads(read_object(repo, f"evidence/{drill_id}/report.json"))
    html = read_object(repo, f"evidence/{drill_id}/report.html")
    md = read_object(repo, f"evidence/{drill_id}/report.md")
    assert doc["rendered"] == {
        "report.md": hashlib.sha256(md).hexdigest(),
        "report.html": hashlib.sha256(html).hexdigest(),
    }
    assert doc["report_sha256"] == report_digest(doc)
    assert f'<code id="report-sha256">{doc["report_sha256"]}</code>'.encode() in html
    assert f"report_sha256: `{doc['report_sha256']}`".encode() in md

    ok = history(capsys, config)
    assert ok.code == 0, ok.err
    assert "1 report(s) intact (report.json, report.md, report.html)" in ok.out

    edits = [
        ("report.html", b"<h1>FAIL</h1>", b"<h1>PASS</h1>"),
        ("report.md", b": FAIL\n", b": PASS\n"),
    ]
    for name, before, after in edits:
        key = f"evidence/{drill_id}/{name}"
        raw = read_object(repo, key)
        edited = raw.replace(before, after, 1)
        assert edited != raw
        write_object(repo, key, edited)
        bad = history(capsys, config)
        assert bad.code == 4, bad.out
        assert f"drill {drill_id}: {name} does not match the sha256" in bad.err
        assert f"{drill_id} ({name})" in bad.err
        assert "Traceback" not in bad.err
        write_object(repo, key, raw)
        assert history(capsys, config).code == 0

    delete_object(repo, f"evidence/{drill_id}/report.html")
    gone = history(capsys, config)
    assert gone.code == 4
    assert f"drill {drill_id}: report.html is missing" in gone.err


# -- signatures ----------------------------------------------------------------------------


def keygen(capsys: pytest.CaptureFixture[str], out: Path) -> str:
    made = run_cli(capsys, "drill", "keygen", "--out", str(out))
    assert made.code == 0, made.err
    assert out.stat().st_mode & 0o777 == 0o600
    assert out.read_text().splitlines()[1] not in made.out + made.err
    return made.out.rsplit("printed in the reports): ", 1)[1].strip()


def reseal(doc: dict[str, Any], key: Ed25519PrivateKey | None = None) -> bytes:
    """What a forger with write access does: recompute every digest (and, with a key of
    their own, re-sign)."""
    if key is not None:
        doc["signing_public_key"] = public_key_text(key.public_key())
    doc["report_sha256"] = report_digest(doc)
    if key is not None:
        doc["signature"] = sign(key, signed_message(doc))
    doc["content_sha256"] = content_digest(doc)
    return (json.dumps(doc, indent=2) + "\n").encode()


def test_signed_history_verifies_with_the_public_key_and_names_the_drill_that_does_not(
    back_up: BackUp,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sample: SampleInfo,
    local_repo: Repo,
) -> None:
    key_file = tmp_path / "keys" / "signing.pem"
    key_file.parent.mkdir()
    public_text = keygen(capsys, key_file)
    public = Path(f"{key_file}.pub")
    refused = run_cli(capsys, "drill", "keygen", "--out", str(key_file))
    assert refused.code == 2 and "never overwrites" in refused.err
    config = configured(
        back_up,
        local_repo,
        sample.database,
        drill={"signing_key_file": str(key_file)},
    )
    cli = Cli(capsys, config)
    secret_pem = key_file.read_bytes()
    secret_line = secret_pem.strip().splitlines()[1].decode()
    for _ in range(2):
        ran = cli("drill", "run")
        assert ran.code == 0, ran.err
        assert secret_line not in ran.out + ran.err
    first, second = drill_ids(local_repo)
    for drill_id in (first, second):
        for name in ("report.json", "report.md", "report.html"):
            data = read_object(local_repo, f"evidence/{drill_id}/{name}")
            assert public_text.encode() in data  # the public key is printed in each
            assert secret_line.encode() not in data  # the private key nowhere

    ok = history(capsys, config, "--public-key", str(public))
    assert ok.code == 0, ok.err
    assert "2 report(s) intact" in ok.out and ", signed by the given key" in ok.out
    # the base64 form printed in the reports is accepted as well
    (tmp_path / "printed.txt").write_text(public_text + "\n")
    assert history(capsys, config, "--public-key", str(tmp_path / "printed.txt")).code == 0

    other_key = tmp_path / "keys" / "other.pem"
    keygen(capsys, other_key)
    wrong = history(capsys, config, "--public-key", f"{other_key}.pub")
    assert wrong.code == 4
    for drill_id in (first, second):
        assert f"drill {drill_id}: report.json is signed by another key" in wrong.err

    # one byte of the second report changes and the forger recomputes every digest:
    # the chain and the digests hold, the signature does not
    key = f"evidence/{second}/report.json"
    raw = read_object(local_repo, key)
    doc = json.loads(raw)
    doc["operator"] = "X" + doc["operator"][1:] if doc["operator"][:1] != "X" else "Y"
    write_object(local_repo, key, reseal(doc))
    for args in ((), ("--public-key", str(public))):
        bad = history(capsys, config, *args)
        assert bad.code == 4, bad.out
        assert f"drill {second}: report.json its signature does not verify" in bad.err
        assert first not in bad.err.split("place(s):")[-1]

    # a forger who re-signs with a key of their own passes a plain --verify (the report
    # names their key), and fails against the operator's public key
    forger = Ed25519PrivateKey.generate()
    write_object(local_repo, key, reseal(json.loads(raw), forger))
    plain = history(capsys, config)
    assert plain.code == 0, plain.err
    forged = history(capsys, config, "--public-key", str(public))
    assert forged.code == 4
    assert f"drill {second}: report.json is signed by another key" in forged.err

    # a report without a signature fails against the key
    stripped = json.loads(raw)
    del stripped["signature"]
    write_object(local_repo, key, reseal(stripped))
    unsigned = history(capsys, config, "--public-key", str(public))
    assert unsigned.code == 4
    assert f"drill {second}: report.json is not signed" in unsigned.err

    write_object(local_repo, key, raw)
    assert history(capsys, config, "--public-key", str(public)).code == 0
    # one byte of a rendered page, with the key: named as well
    md_key = f"evidence/{first}/report.md"
    md = read_object(local_repo, md_key)
    write_object(local_repo, md_key, md[:-2] + bytes([md[-2] ^ 1]) + md[-1:])
    page = history(capsys, config, "--public-key", str(public))
    assert page.code == 4
    assert f"drill {first}: report.md does not match" in page.err


def test_signing_keys_from_openssl_and_raw_seeds_load_and_bad_ones_are_named_not_shown(
    tmp_path: Path,
) -> None:
    pem = tmp_path / "openssl.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(pem)],
        check=True,
        capture_output=True,
    )
    from_openssl = load_signing_key(pem)
    pub = tmp_path / "openssl.pub"
    subprocess.run(
        ["openssl", "pkey", "-in", str(pem), "-pubout", "-out", str(pub)],
        check=True,
        capture_output=True,
    )
    assert public_key_text(load_public_key(pub)) == public_key_text(from_openssl.public_key())

    seed = tmp_path / "seed"
    seed.write_bytes(secrets.token_bytes(32))
    load_signing_key(seed)

    garbage = tmp_path / "garbage.pem"
    # a PEM-shaped file whose body is no key (assembled here: no key-shaped literal in git)
    label = "PRIVATE " + "KEY"
    content = f"-----BEGIN {label}-----\nc2VjcmV0LWNvbnRlbnQ=\n-----END {label}-----\n"
    garbage.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_signing_key(garbage)
    assert str(garbage) in str(err.value) and "c2VjcmV0" not in str(err.value)
    with pytest.raises(UsageError):
        load_public_key(garbage)
    (tmp_path / "huge").write_bytes(b"A" * 100_000)
    with pytest.raises(UsageError):
        load_public_key(tmp_path / "huge")


def test_a_config_with_an_unusable_signing_key_is_refused_with_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pg: ConnParams, local_repo: Repo
) -> None:
    bad = tmp_path / "key.pem"
    bad.write_text("not a key: hunter2hunter2\n")
    config = write_config(tmp_path / "c.yaml", pg, local_repo, drill={"signing_key_file": str(bad)})
    cli = Cli(capsys, config)
    result = cli("drill", "history")
    assert result.code == 3
    assert "drill -> signing_key_file" in result.err or "signing_key_file" in result.err
    assert "hunter2" not in result.err + result.out
    usage = cli("drill", "history", "--public-key", "x")
    assert usage.code == 2 and "use it with --verify" in usage.err


# -- object lock -----------------------------------------------------------------------------


@pytest.fixture
def locked_repo(s3_endpoint: str) -> Repo:
    return s3_repo(s3_endpoint, object_lock_bucket(s3_endpoint))


def test_evidence_is_written_under_object_lock_retention_where_the_bucket_has_it(
    back_up: BackUp, capsys: pytest.CaptureFixture[str], sample: SampleInfo, locked_repo: Repo
) -> None:
    config = configured(back_up, locked_repo, sample.database)
    cli = Cli(capsys, config)
    check = cli("config", "check")
    assert "GOVERNANCE retention for 9 days" in check.out
    before = datetime.now(UTC)
    ran = cli("drill", "run")
    assert ran.code == 0, ran.err
    assert any("evidence is written under object lock: GOVERNANCE" in m for m in messages(ran))
    client: Any = s3_client(locked_repo.storage["endpoint_url"])
    bucket = locked_repo.url.removeprefix("s3://").split("/")[0]
    (drill_id,) = drill_ids(locked_repo)
    expected = before + timedelta(days=RETENTION_DAYS)
    for name in ("report.json", "report.md", "report.html"):
        key = f"prod/evidence/{drill_id}/{name}"
        head = client.head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE"
        until = head["ObjectLockRetainUntilDate"]
        assert abs((until - expected).total_seconds()) < 600, (until, expected)
        # (moto 5.2 does not implement GetObjectRetention: HEAD carries the same fields)
        # the stored version cannot be deleted, not even by the bucket's owner
        with pytest.raises(ClientError):
            client.delete_object(Bucket=bucket, Key=key, VersionId=head["VersionId"])
    ok = history(capsys, config)
    assert ok.code == 0, ok.err
    assert "each written once" in ok.out
    # the owner can still put a new version over a key (here: the same bytes, as a
    # forger re-chaining the history would): the locked original stays, and it is named
    key = f"evidence/{drill_id}/report.json"
    write_object(locked_repo, key, read_object(locked_repo, key))
    rewritten = history(capsys, config)
    assert rewritten.code == 4
    assert f"drill {drill_id}: report.json has 2 versions" in rewritten.err


def test_storage_declares_object_lock_and_writes_the_retention_asked_for(
    tmp_path: Path, locked_repo: Repo, bucket: str, s3_endpoint: str
) -> None:
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    with open_repository(
        StorageConfig.model_validate({"url": locked_repo.url, **locked_repo.storage})
    ) as storage:
        assert storage.capabilities().object_lock
        storage.put_bytes("evidence/x/report.json", b"{}", retention=Retention("COMPLIANCE", until))
    client: Any = s3_client(s3_endpoint)
    locked_bucket = locked_repo.url.removeprefix("s3://").split("/")[0]
    head = client.head_object(Bucket=locked_bucket, Key="prod/evidence/x/report.json")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] == until

    # with a repository-wide storage.object_lock too, the stronger of the two applies
    repo_wide = {**locked_repo.storage, "object_lock": {"mode": "COMPLIANCE", "days": 1}}
    with open_repository(
        StorageConfig.model_validate({"url": locked_repo.url, **repo_wide})
    ) as storage:
        storage.put_bytes("evidence/y/report.json", b"{}", retention=Retention("GOVERNANCE", until))
    head = client.head_object(Bucket=locked_bucket, Key="prod/evidence/y/report.json")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] == until

    plain = {**locked_repo.storage}
    with open_repository(
        StorageConfig.model_validate({"url": f"s3://{bucket}/prod", **plain})
    ) as storage:
        caps = storage.capabilities()
        assert not caps.object_lock and "not enabled" in caps.detail
    local = open_repository(StorageConfig.model_validate({"url": f"file://{tmp_path}/r"}))
    assert not local.capabilities().object_lock
    with pytest.raises(StorageError):
        local.put_bytes("evidence/x/report.json", b"{}", retention=Retention("GOVERNANCE", until))


def test_evidence_lock_decision() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    locking = Capabilities(object_lock=True, detail="s3://b: object lock is enabled")
    without = Capabilities(object_lock=False, detail="s3://b: not supported")
    assert evidence_lock("governance", locking, 30, now).retention == Retention(
        "GOVERNANCE", now + timedelta(days=30)
    )
    assert evidence_lock("compliance", locking, 7, now).retention == Retention(
        "COMPLIANCE", now + timedelta(days=7)
    )
    off = evidence_lock("off", locking, 30, now)
    assert off.retention is None and "off" in off.note
    missing = evidence_lock("compliance", without, 30, now)
    assert missing.retention is None
    assert "object lock is not available (s3://b: not supported)" in missing.note


# -- the verifiers over hostile seal fields (pure) ---------------------------------------


def stored_report(drill_id: str, doc: dict[str, Any]) -> StoredReport:
    raw = json.dumps(doc).encode()
    return StoredReport(drill_id, raw, parse_report(raw, drill_id))


def synthetic(key: Ed25519PrivateKey | None) -> tuple[dict[str, Any], dict[str, bytes]]:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    report = drill_report(
        "d1",
        now,
        result="fail",
        signing_public_key=public_key_text(key.public_key()) if key else None,
    )
    pages = {"report.md": b"# FAIL\n", "report.html": b"<h1>FAIL</h1>"}
    raw = seal(report, rendered=pages, signer=functools.partial(sign, key) if key else None)
    return json.loads(raw), pages


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rendered", "not a mapping"),
        ("rendered", {"report.md": 7, "report.html": "x" * 10_000}),
        ("rendered", {}),
        ("signature", 12),
        ("signature", "!!not base64!!"),
        ("signature", "A" * 88),
        ("signing_public_key", "AAAA"),
        ("signing_public_key", ["list"]),
    ],
)
def test_verifiers_turn_hostile_seal_fields_into_named_problems(field: str, value: Any) -> None:
    key = Ed25519PrivateKey.generate()
    doc, pages = synthetic(key)
    digests = {("d1", n): hashlib.sha256(b).hexdigest() for n, b in pages.items()}
    assert verify_rendered([stored_report("d1", doc)], digests) == ([], [])
    assert verify_signatures([stored_report("d1", doc)], key.public_key()) == []
    doc[field] = value
    doc["content_sha256"] = content_digest(doc)
    try:
        stored = stored_report("d1", doc)
    except IntegrityError:
        return  # refused by the model: verify_chain names it
    files, _ = verify_rendered([stored], digests)
    signatures = verify_signatures([stored], key.public_key())
    problems = files + signatures
    assert problems and all(p.drill_id == "d1" for p in problems)
    assert all(len(p.detail) < 300 for p in problems)


def test_unsigned_reports_pass_without_a_key_and_fail_with_one() -> None:
    doc, _ = synthetic(None)
    stored = stored_report("d1", doc)
    assert verify_signatures([stored], None) == []
    (problem,) = verify_signatures([stored], Ed25519PrivateKey.generate().public_key())
    assert problem.detail == "is not signed"
