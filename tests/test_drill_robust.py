"""A drill always ends with a report: neutralization adapts to the Odoo schema it finds,
its failure is a failed check, and an unexpected error after the drill started is a
failed drill with a report, never an internal error."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from backdrill.pg.connection import ConnParams
from backdrill.report.model import DRILL_PROVES
from backdrill.runtime import text
from backdrill.sample.odoo import SampleInfo
from helpers.backed import BackUp
from helpers.cli import Repo, Result
from helpers.repo import list_keys

README = Path(__file__).resolve().parent.parent / "README.md"


def _alter(pg: ConnParams, sample: SampleInfo, *statements: str) -> None:
    with pg.with_db(sample.database).connect() as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def _backup_and_drill(
    back_up: BackUp, sample: SampleInfo, repo: Repo, work: Path | None = None
) -> tuple[Result, dict[str, object]]:
    backed = back_up(repo, sample.database, work=work)
    result = backed.cli("drill", "run")
    reports = backed.reports
    (path,) = reports.glob("*/report.json")
    report = json.loads(path.read_text())
    names = {p.name for p in path.parent.iterdir()}
    assert names == {"report.json", "report.md", "report.html"}
    evidence = {k for k in list_keys(repo, "evidence/") if k.startswith("evidence/")}
    assert {f"evidence/{report['drill_id']}/{n}" for n in names} <= evidence
    return result, report


def _failed_drill(
    back_up: BackUp, sample: SampleInfo, repo: Repo, work: Path | None = None
) -> tuple[Result, dict[str, object]]:
    """:func:`_backup_and_drill` whose drill failed as it should: exit 1, a report that
    says so, no internal error."""
    result, report = _backup_and_drill(back_up, sample, repo, work)
    assert result.code == 1, result.out + result.err
    _no_internal_error(result)
    assert report["result"] == "fail"
    return result, report


def _mail_server_trigger(pg: ConnParams, sample: SampleInfo, when: str, body: str) -> None:
    """A trigger on ir_mail_server running ``body`` ``when`` (``BEFORE INSERT OR UPDATE
    ON ir_mail_server FOR EACH ROW``): what the neutralization's writes there meet."""
    _alter(
        pg,
        sample,
        f"CREATE FUNCTION on_mail_server() RETURNS trigger LANGUAGE plpgsql AS $${body}$$",
        f"CREATE TRIGGER on_mail_server {when} EXECUTE FUNCTION on_mail_server()",
    )


def _checks(report: dict[str, object]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in report["checks"]}  # type: ignore[union-attr]


def _no_internal_error(result: Result) -> None:
    assert "Traceback" not in result.err
    assert "internal error" not in result.err
    assert '"traceback"' not in result.err


# -- neutralization adapts to the schema it finds --------------------------------------


@pytest.mark.parametrize("shape", ["trimmed", "required"])
def test_neutralization_adapts_to_the_mail_server_table_and_the_drill_passes(
    back_up: BackUp, pg: ConnParams, sample: SampleInfo, repo: Repo, shape: str
) -> None:
    if shape == "trimmed":  # an older or trimmed Odoo: name, smtp_host and active only
        _alter(
            pg,
            sample,
            "ALTER TABLE ir_mail_server DROP COLUMN id, DROP COLUMN smtp_port, "
            "DROP COLUMN smtp_encryption, DROP COLUMN smtp_user, DROP COLUMN smtp_pass, "
            "DROP COLUMN sequence",
        )
    else:  # NOT NULL columns without a default must get a value in the rows it inserts
        _alter(
            pg,
            sample,
            "ALTER TABLE ir_mail_server ADD COLUMN company_id integer NOT NULL DEFAULT 1, "
            "ADD COLUMN create_date timestamp NOT NULL DEFAULT now(), "
            "ADD COLUMN smtp_debug boolean NOT NULL DEFAULT false",
            "ALTER TABLE ir_mail_server ALTER COLUMN company_id DROP DEFAULT, "
            "ALTER COLUMN create_date DROP DEFAULT, ALTER COLUMN smtp_debug DROP DEFAULT",
            "ALTER TABLE ir_config_parameter ADD COLUMN create_uid integer NOT NULL DEFAULT 1",
            "ALTER TABLE ir_config_parameter ALTER COLUMN create_uid DROP DEFAULT",
        )
    result, report = _backup_and_drill(back_up, sample, repo)
    assert result.code == 0, result.out + result.err
    _no_internal_error(result)
    checks = _checks(report)
    neutral = checks["odoo_neutralized"]
    assert neutral["status"] == "pass", neutral
    assert "1 mail server(s)" in neutral["detail"]
    assert "dummy mail server added" in neutral["detail"]
    assert "database.is_neutralized = true" in neutral["detail"]
    # the row the neutralization inserted is accounted for
    assert checks["row_counts"]["status"] == "pass", checks["row_counts"]
    assert report["result"] == "pass"


def test_a_neutralization_that_cannot_be_done_is_a_failed_check(
    back_up: BackUp, pg: ConnParams, sample: SampleInfo, local_repo: Repo, work_dir: Path
) -> None:
    _mail_server_trigger(
        pg,
        sample,
        "BEFORE INSERT OR UPDATE ON ir_mail_server FOR EACH ROW",
        "BEGIN RAISE EXCEPTION 'mail servers are managed elsewhere'; END",
    )
    result, report = _failed_drill(back_up, sample, local_repo)
    checks = _checks(report)
    neutral = checks["odoo_neutralized"]
    assert neutral["status"] == "fail"
    assert "mail servers are managed elsewhere" in neutral["detail"]
    assert "rolled back" in neutral["detail"]
    assert "\n" not in neutral["detail"]
    # rolled back: the restored rows are the dumped rows, and every other check ran
    assert checks["row_counts"]["status"] == "pass", checks["row_counts"]
    assert checks["odoo_modules"]["status"] == "pass"
    assert "FAILED odoo_neutralized" in result.out
    assert list(work_dir.iterdir()) == []


# -- an unexpected error after the drill started ---------------------------------------


def test_a_postgres_error_in_a_check_fails_the_drill_with_a_report(
    back_up: BackUp, pg: ConnParams, sample: SampleInfo, local_repo: Repo, work_dir: Path
) -> None:
    # the neutralization's insert renames a column the Odoo facts read: the restored
    # database no longer answers the verification's query
    _mail_server_trigger(
        pg,
        sample,
        "AFTER INSERT ON ir_mail_server FOR EACH STATEMENT",
        "BEGIN ALTER TABLE ir_module_module RENAME COLUMN state TO state_gone; RETURN NULL; END",
    )
    result, report = _failed_drill(back_up, sample, local_repo)
    assert "state" in str(report["error"])
    drill = _checks(report)["drill"]
    assert drill["status"] == "fail"
    assert drill["detail"].startswith("verify: PostgreSQL error: ")
    assert "state" in drill["detail"] and "\n" not in drill["detail"]
    errors = [json.loads(line) for line in result.errors]
    assert len(errors) == 1, result.err
    assert "state" in errors[0]["message"]
    assert list(work_dir.iterdir()) == []


def test_an_unusable_work_directory_fails_the_drill_with_a_report(
    back_up: BackUp, tmp_path: Path, sample: SampleInfo, local_repo: Repo
) -> None:
    # the drill's downloads go to a work directory that is not a directory (as a full
    # or missing disk would): an OSError, reported, not an internal error
    not_a_dir = tmp_path / "work-file"
    not_a_dir.write_text("x")
    result, report = _failed_drill(back_up, sample, local_repo, work=not_a_dir)
    drill = _checks(report)["drill"]
    assert drill["status"] == "fail"
    assert str(not_a_dir) in drill["detail"] and "Not a directory" in drill["detail"]
    assert len(result.errors) == 1, result.err


# -- what a PASS proves ---------------------------------------------------------------


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_the_report_and_the_readme_say_what_a_pass_proves(
    back_up: BackUp, tmp_path: Path, sample: SampleInfo, local_repo: Repo
) -> None:
    import html

    result, _report = _backup_and_drill(back_up, sample, local_repo)
    assert result.code == 0, result.out + result.err
    (folder,) = (tmp_path / "reports").glob("*")
    assert "Odoo itself was not started" in DRILL_PROVES
    assert "ir_attachment" in DRILL_PROVES
    md = _words((folder / "report.md").read_text())
    assert _words(text.markdown(DRILL_PROVES)) in md  # Markdown-escaped, as every value
    page = _words(html.unescape(re.sub(r"<[^>]+>", "", (folder / "report.html").read_text())))
    assert _words(DRILL_PROVES) in page
    readme = _words(README.read_text().replace("`", ""))
    assert _words(DRILL_PROVES) in readme
