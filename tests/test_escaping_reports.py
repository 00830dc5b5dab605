"""Names with markup in the drill's pages: report.html and the history page opened in
headless Chromium run no script and show the names as text; report.md stays one table row
per check with no raw HTML."""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

import pytest
from psycopg import sql

from backdrill.pg.connection import ConnParams
from backdrill.report.model import BackupRef, seal
from backdrill.repository.layout import MANIFEST_NAME, backup_dir
from backdrill.sample.odoo import create_sample
from conftest import drop_database
from helpers.browser import chromium_or_skip, dom_after_load
from helpers.cli import Cli, Repo, run_cli, write_config
from helpers.repo import manifests, read_object, write_object
from helpers.seed import drill_report

# each would set the page's title if it ran; PostgreSQL names stay under 63 bytes
DATABASE = "<img src=x onerror=document.title='db'>"
TABLE = "</td><img src=x onerror=document.title='t'>"
MODULE = "<svg onload=document.title='mod'>"


def _hostile_sample(pg: ConnParams, tmp_path: Path) -> str:
    """The sample Odoo database under a hostile name, with a hostile table and an
    installed module named with markup."""
    name = f"{DATABASE}{secrets.token_hex(2)}"
    create_sample(pg, name, tmp_path / "filestore", scale=0.2)
    with pg.with_db(name).connect() as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (id int); INSERT INTO {} VALUES (1), (2)").format(
                sql.Identifier(TABLE), sql.Identifier(TABLE)
            )
        )
        conn.execute(
            "INSERT INTO ir_module_module (name, state) VALUES (%s, 'installed')", (MODULE,)
        )
    return name


def _tamper_manifest(repo: Repo) -> None:
    """What a writer to the bucket can do: one more row expected in the hostile table,
    the hostile module missing from the recorded modules, so both checks fail naming them."""
    (doc,) = manifests(repo)
    for entry in doc["tables"]:
        if entry["table"] == TABLE:
            entry["rows"] += 1
    doc["odoo"]["installed_modules"].remove(MODULE)
    write_object(
        repo, backup_dir(doc["database"], doc["id"]) + MANIFEST_NAME, json.dumps(doc).encode()
    )


def _no_markup_ran(dom: str) -> None:
    assert re.search(r"<title>backdrill drill [^<]*</title>", dom), dom[:500]
    assert "<img" not in dom and "<svg onload" not in dom and "<script" not in dom


@pytest.fixture
def failed_drill(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pg: ConnParams,
    local_repo: Repo,
    work_dir: Path,
) -> Path:
    """The report directory of a real drill of the hostile database whose row_counts and
    odoo_modules checks failed naming the hostile table and module."""
    database = _hostile_sample(pg, tmp_path)
    try:
        config = write_config(
            tmp_path / "c.yaml",
            pg,
            local_repo,
            databases=[database],
            drill={"report_dir": str(tmp_path / "reports"), "work_dir": str(work_dir)},
        )
        backup = run_cli(capsys, "--config", str(config), "backup", "db")
        assert backup.code == 0, backup.err
        _tamper_manifest(local_repo)
        drill = run_cli(capsys, "--config", str(config), "drill", "run")
    finally:
        drop_database(pg, database)
    assert drill.code != 0, drill.out
    assert "\x1b" not in drill.out
    (report_dir,) = (tmp_path / "reports").iterdir()
    report = json.loads((report_dir / "report.json").read_text())
    failed = {c["name"]: c["detail"] for c in report["checks"] if c["status"] == "fail"}
    assert TABLE in failed["row_counts"] and MODULE in failed["odoo_modules"], failed
    assert report["backup"]["database"] == database
    return report_dir


def test_report_html_of_a_drill_with_markup_in_names_runs_no_script(
    failed_drill: Path, tmp_path: Path
) -> None:
    chromium = chromium_or_skip()
    page = failed_drill / "report.html"
    dom = dom_after_load(chromium, tmp_path / "chromium", page)
    _no_markup_ran(dom)
    source = page.read_text().replace("&#39;", "'")
    assert "script-src 'none'" in source and "default-src 'none'" in source
    # the names are on the page, as text
    assert "&lt;img src=x onerror=document.title='db'&gt;" in dom
    assert "&lt;/td&gt;&lt;img src=x onerror=document.title='t'&gt;" in dom
    assert "&lt;svg onload=document.title='mod'&gt;" in dom
    assert "<h1>FAIL</h1>" in dom


def test_the_pages_policy_stops_markup_that_escaped_escaping(
    failed_drill: Path, tmp_path: Path
) -> None:
    """Defence in depth: should a value ever reach the page unescaped, the page's
    Content-Security-Policy still runs no inline script or event handler."""
    chromium = chromium_or_skip()
    page = failed_drill / "report.html"
    injected = page.read_text().replace(
        "<main>",
        "<main><img src=x onerror=\"document.title='handler'\">"
        "<svg onload=\"document.title='svg'\"></svg>"
        "<script>document.title='script'</script>",
        1,
    )
    assert injected != page.read_text()
    page.write_text(injected)
    dom = dom_after_load(chromium, tmp_path / "chromium", page)
    assert re.search(r"<title>backdrill drill [^<]*</title>", dom), dom[:500]
    assert "<h1>FAIL</h1>" in dom


def test_report_md_keeps_one_row_per_check_and_no_html(failed_drill: Path) -> None:
    text = (failed_drill / "report.md").read_text()
    # no raw HTML: every < is backslash-escaped (CommonMark shows it as a literal <)
    assert not re.search(r"(?<!\\)<", text), text
    assert r"\<img src=x onerror=document.title='db'\>" in text
    rows = text.split("| status | check | detail |\n|---|---|---|\n", 1)[1].split("\n\n", 1)[0]
    report = json.loads((failed_drill / "report.json").read_text())
    assert len(rows.splitlines()) == len(report["checks"])
    for row in rows.splitlines():
        # three cells: four pipes that are not escaped
        assert len(re.findall(r"(?<!\\)\|", row)) == 4, row
    row_counts = next(r for r in rows.splitlines() if r.startswith("| fail | row\\_counts |"))
    assert r"\</td\>\<img src=x onerror=document.title='t'\>" in row_counts


@pytest.mark.slow
def test_history_page_with_a_hostile_report_runs_no_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chromium = chromium_or_skip()
    repo = tmp_path / "repo"
    now = datetime.now(UTC)
    report = drill_report(
        "<img src=x onerror=document.title='id'>",
        now,
        backup=BackupRef(
            id="<svg onload=document.title='b'>",
            database=DATABASE,
            created_at=now,
            sha256="0" * 64,
            size_bytes=1,
        ),
    )
    # a writer to the bucket puts it under an ordinary folder name
    folder = repo / "evidence" / "20261201T000000Z-abcdef"
    folder.mkdir(parents=True)
    (folder / "report.json").write_bytes(seal(report))
    config = tmp_path / "c.yaml"
    cli = Cli(capsys, config)
    config.write_text(f"storage: {{url: 'file://{repo}'}}\n")
    page = tmp_path / "history.html"
    result = cli("drill", "history", "--html", str(page))
    assert result.code == 0, result.err
    dom = dom_after_load(chromium, tmp_path / "chromium", page)
    assert "<title>backdrill drill history</title>" in dom, dom[:500]
    assert "<img" not in dom and "<svg onload" not in dom
    assert "Content-Security-Policy" in page.read_text()
    assert "&lt;img src=x onerror=document.title='id'&gt;" in dom
    assert "&lt;svg onload=document.title='b'&gt;" in dom


def test_evidence_copy_of_the_report_is_escaped_too(failed_drill: Path, local_repo: Repo) -> None:
    report = json.loads((failed_drill / "report.json").read_text())
    html = read_object(local_repo, f"evidence/{report['drill_id']}/report.html").decode()
    assert "<img" not in html and "<svg onload" not in html
