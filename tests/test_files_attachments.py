"""The drill's attachment check against a real Odoo-shaped database and its filestore."""

from __future__ import annotations

import shutil
from pathlib import Path

from backdrill.files.attachments import check_attachments
from backdrill.pg.connection import ConnParams
from backdrill.sample.odoo import SampleInfo


def _first_attachment(pg: ConnParams, sample: SampleInfo) -> tuple[int, str, str]:
    with pg.with_db(sample.database).connect() as conn:
        row = conn.execute(
            "SELECT id, name, store_fname FROM ir_attachment ORDER BY id LIMIT 1"
        ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1]), str(row[2])


def test_attachments_pass_when_every_file_is_present(pg: ConnParams, sample: SampleInfo) -> None:
    with pg.with_db(sample.database).connect() as conn:
        check = check_attachments(conn, sample.filestore)
    assert check.ok
    assert check.checked == sample.attachments
    assert (check.missing, check.mismatched) == (0, 0)


def test_a_deleted_file_reports_its_attachments_missing(pg: ConnParams, sample: SampleInfo) -> None:
    att_id, name, store_fname = _first_attachment(pg, sample)
    (sample.filestore / store_fname).unlink()
    with pg.with_db(sample.database).connect() as conn:
        check = check_attachments(conn, sample.filestore)
        sharing = conn.execute(
            "SELECT count(*) FROM ir_attachment WHERE store_fname = %s", (store_fname,)
        ).fetchone()
    assert sharing is not None
    assert not check.ok
    assert check.missing == sharing[0] and check.mismatched == 0
    assert (att_id, name, store_fname) == (
        check.missing_examples[0].id,
        check.missing_examples[0].name,
        check.missing_examples[0].store_fname,
    )
    assert f"#{att_id} {name} ({store_fname})" in check.detail()


def test_a_changed_byte_reports_the_attachment_mismatched(
    pg: ConnParams, sample: SampleInfo
) -> None:
    att_id, _name, store_fname = _first_attachment(pg, sample)
    path = sample.filestore / store_fname
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    with pg.with_db(sample.database).connect() as conn:
        check = check_attachments(conn, sample.filestore)
    assert check.missing == 0 and check.mismatched >= 1
    assert check.mismatched_examples[0].id == att_id


def test_examples_are_capped_at_twenty_and_paths_cannot_leave_the_filestore(
    pg: ConnParams, sample: SampleInfo, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.pdf"
    outside.write_bytes(b"x")
    with pg.with_db(sample.database).connect() as conn:
        conn.execute(
            "INSERT INTO ir_attachment (name, store_fname, checksum) "
            "VALUES ('escape', '../outside.pdf', NULL)"
        )
        conn.commit()
        shutil.rmtree(sample.filestore)
        sample.filestore.mkdir()
        check = check_attachments(conn, sample.filestore)
    assert check.missing == sample.attachments + 1
    assert len(check.missing_examples) == 20
    assert check.missing_examples == sorted(check.missing_examples, key=lambda r: r.id)
