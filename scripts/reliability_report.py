"""Run the fault matrix and rewrite docs/reliability.md with the result of this run.

    .venv/bin/python scripts/reliability_report.py [--dry-run] [pytest args...]

Each row of MATRIX names a fault, where it is injected, the expected outcome and the
test that proves it (a pytest node id; without a ``[param]`` every parametrisation of
the test must pass). The script runs exactly those tests with ``--junitxml``, marks
each row passed or failed, and writes the table and a summary. Exit 0 when every row
passed.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
SF = "tests/test_storage_faults.py"
FF = "tests/test_files_faults.py"
PF = "tests/test_pg_faults.py"
BI = "tests/test_bad_input.py"
EN = "tests/test_encryption.py"


@dataclass(frozen=True)
class Row:
    fault: str
    where: str
    expected: str
    test: str


MATRIX: list[Row] = [
    # -- transient storage faults: retried, the backup commits, sha256 verified
    Row(
        "5 consecutive HTTP 503 ServiceUnavailable",
        "proxy: UploadPart 1",
        "retried (attempts 1-5 logged), backup committed, sha256 verified",
        f"{SF}::test_backup_commits_after_five_consecutive_transient_errors[503-part]",
    ),
    Row(
        "5 consecutive SlowDown (throttling)",
        "proxy: CreateMultipartUpload",
        "retried, backup committed, sha256 verified",
        f"{SF}::test_backup_commits_after_five_consecutive_transient_errors[slowdown-create]",
    ),
    Row(
        "5 consecutive HTTP 500 InternalError",
        "proxy: PutObject of the manifest",
        "retried, backup committed, sha256 verified",
        f"{SF}::test_backup_commits_after_five_consecutive_transient_errors[500-manifest]",
    ),
    Row(
        "5 consecutive HTTP 502",
        "proxy: UploadPart 2",
        "retried, backup committed, sha256 verified",
        f"{SF}::test_backup_commits_after_five_consecutive_transient_errors[502-part]",
    ),
    Row(
        "connection reset mid-part (twice)",
        "proxy: UploadPart 2",
        "part re-sent, backup committed, sha256 verified",
        f"{SF}::test_backup_commits_after_connection_resets_mid_part",
    ),
    Row(
        "10 s outage mid-upload",
        "proxy: everything down from UploadPart 2",
        "default policy rides it out, backup committed, sha256 verified",
        f"{SF}::test_backup_rides_out_a_ten_second_outage_with_the_default_policy",
    ),
    Row(
        "default retry policy bounds",
        "pure",
        "rides out 10 s, gives up within 90 s (attempts 8)",
        f"{SF}::test_default_retry_policy_rides_out_ten_seconds_and_gives_up_within_two_minutes",
    ),
    Row(
        "5-minute outage mid-upload (scaled 20x: retries 4 s, clean-up budget 20 s)",
        "proxy: everything down from UploadPart 2",
        "exit 5, one line 'gave up after N attempts', no manifest; the clean-up waits for "
        "the store: no open upload, lock released before the run exits",
        f"{SF}::test_backup_fails_on_a_long_outage_with_exit_5_and_cleans_up_once_the_store_is_back",
    ),
    Row(
        "outage outlasting the clean-up budget too",
        "proxy: everything down for 300 s, clean-up budget 2 s",
        "exit 5, log says prune removes the upload; prune afterwards leaves no open upload "
        "and no lock",
        f"{SF}::test_an_outage_outlasting_the_cleanup_budget_leaves_what_prune_removes",
    ),
    Row(
        "every part answered 503",
        "proxy: all UploadPart",
        "exit 5 after retries, upload aborted, lock released, no manifest",
        f"{SF}::test_backup_fails_when_parts_keep_failing_and_aborts_the_upload",
    ),
    # -- the same faults during ``backup files`` (a 12 MB file in three parts + 43 files)
    Row(
        "backup files: 5 consecutive 503 / SlowDown / 500",
        "proxy: PutObject of file objects, CreateMultipartUpload, UploadPart 2, snapshot",
        "retried, snapshot committed, verify --read-data passes, restore byte-for-byte",
        f"{FF}::test_files_backup_commits_after_five_consecutive_transient_errors",
    ),
    Row(
        "backup files: connection reset mid-part (twice)",
        "proxy: UploadPart 2",
        "part re-sent, snapshot committed and verified",
        f"{FF}::test_files_backup_commits_after_connection_resets_mid_part",
    ),
    Row(
        "backup files: 10 s outage mid-upload",
        "proxy: everything down from UploadPart 2",
        "default policy rides it out, snapshot committed and verified",
        f"{FF}::test_files_backup_rides_out_a_ten_second_outage_with_the_default_policy",
    ),
    Row(
        "backup files: 5-minute outage (scaled)",
        "proxy: everything down from UploadPart 2",
        "exit 5, one line, no snapshot, no open upload, lock released",
        f"{FF}::test_files_backup_fails_on_a_long_outage_with_exit_5_and_leaves_nothing_open",
    ),
    # -- permanent storage faults: not retried, one line, exit 5
    Row(
        "403 AccessDenied",
        "proxy: PutObject",
        "not retried, one line, exit 5",
        f"{SF}::test_permanent_storage_errors_are_not_retried_and_exit_5_in_one_line[403-AccessDenied]",
    ),
    Row(
        "wrong access key (InvalidAccessKeyId)",
        "proxy: PutObject",
        "not retried, one line naming the credentials, exit 5",
        f"{SF}::test_permanent_storage_errors_are_not_retried_and_exit_5_in_one_line[403-InvalidAccessKeyId]",
    ),
    Row(
        "wrong secret key (SignatureDoesNotMatch)",
        "proxy: PutObject",
        "not retried, one line naming the credentials, exit 5",
        f"{SF}::test_permanent_storage_errors_are_not_retried_and_exit_5_in_one_line[403-SignatureDoesNotMatch]",
    ),
    Row(
        "bucket does not exist",
        "moto: no such bucket",
        "not retried, one line naming the bucket, exit 5",
        f"{SF}::test_a_bucket_that_does_not_exist_exits_5_naming_it",
    ),
    Row(
        "endpoint host name does not resolve (DNS)",
        "config: *.invalid endpoint",
        "not retried, one line, exit 5",
        f"{SF}::test_an_endpoint_whose_name_does_not_resolve_exits_5_without_retrying",
    ),
    Row(
        "endpoint unreachable (connection refused)",
        "proxy: down for an hour",
        "retried with logged attempts, then exit 5",
        f"{SF}::test_an_unreachable_endpoint_is_retried_then_exits_5",
    ),
    Row(
        "storage write fails mid-upload (403 on part 2)",
        "proxy: UploadPart 2",
        "exit 5, upload aborted, nothing stored",
        "tests/test_backup_db.py::"
        "test_storage_failing_mid_upload_on_s3_leaves_no_backup_and_no_open_upload",
    ),
    Row(
        "local disk write fails (EFBIG)",
        "RLIMIT_FSIZE",
        "exit 5, no partial file",
        "tests/test_backup_db.py::test_storage_failing_mid_write_on_local_leaves_no_partial_file",
    ),
    # -- downloads
    Row(
        "connection cut mid-body of a download",
        "proxy: GetObject of the dump",
        "resumed with a ranged GET; verify, drill and restore pass",
        f"{SF}::test_a_download_broken_mid_body_resumes_with_a_ranged_get[cut-verify]",
    ),
    Row(
        "download body truncated (short of Content-Length)",
        "proxy: GetObject of the dump",
        "detected and resumed; verify, drill and restore pass",
        f"{SF}::test_a_download_broken_mid_body_resumes_with_a_ranged_get",
    ),
    Row(
        "byte flipped in a download",
        "proxy: GetObject of the dump",
        "exit 4 in verify --read-data, drill and restore; nothing half-restored",
        f"{SF}::test_a_byte_flipped_in_a_download_exits_4_and_leaves_nothing_restored",
    ),
    Row(
        "stored dump flipped, truncated or missing",
        "repository object",
        "drill exits 4 naming it",
        "tests/test_drill.py::test_drill_fails_with_exit_4_on_a_damaged_dump",
    ),
    Row(
        "stored dump damaged (verify)",
        "repository object",
        "verify exits 4 naming every failing backup",
        "tests/test_verify_db.py::test_verify_exits_4_naming_every_failing_backup",
    ),
    # -- PostgreSQL
    Row(
        "PostgreSQL refuses connections for 2 s at start",
        "TCP forwarder listening late",
        "connection retried (attempt logged), backup committed",
        f"{PF}::test_postgres_refusing_connections_at_start_is_retried",
    ),
    Row(
        "connection lost mid-dump",
        "pg_terminate_backend while pg_dump waits",
        "exit 5, one line, no manifest, no dump, no upload, lock released",
        f"{PF}::test_a_connection_lost_mid_dump_fails_the_backup_cleanly",
    ),
    Row(
        "pg_dump killed mid-stream",
        "SIGKILL to pg_dump",
        "exit 5 naming the signal, nothing stored",
        "tests/test_backup_db.py::test_pg_dump_killed_mid_stream_leaves_nothing_and_exits_5",
    ),
    Row(
        "database does not exist",
        "config",
        "not retried, one line naming it, exit 5",
        f"{PF}::test_a_database_that_does_not_exist_exits_5_naming_it",
    ),
    Row(
        "pg_dump missing",
        "postgres.bin_dir empty, PATH without it",
        "one line naming bin_dir, exit 5",
        f"{PF}::test_pg_dump_missing_exits_5_with_one_line",
    ),
    # -- interruption
    Row(
        "SIGTERM at random moments (24 runs: backup db, backup files, drill, restore)",
        "subprocess signal",
        "exit 143 within 10 s; no orphan, no sandbox dir, no open upload, lock released; "
        "a complete verified backup or none",
        "tests/test_interrupt.py::test_sigterm_at_random_moments_always_cleans_up_and_exits_143",
    ),
    Row(
        "SIGTERM during a drill",
        "subprocess signal",
        "exit 143, no sandbox left",
        "tests/test_drill.py::test_drill_interrupted_by_sigterm_leaves_no_sandbox",
    ),
    Row(
        "SIGTERM while the manifest is being written (before / after it lands)",
        "in-process: the manifest PUT raises Interrupted",
        "exit 143; the committed dump removed when no manifest landed, the whole backup "
        "kept when it did",
        "tests/test_backup_db.py::"
        "test_a_signal_around_the_manifest_write_leaves_no_backup_or_a_whole_one",
    ),
    Row(
        "run killed by SIGKILL",
        "SIGKILL to backdrill",
        "orphan removed by the next prune (dead-holder lock takeover)",
        "tests/test_backup_locks.py::"
        "test_backup_killed_by_sigkill_leaves_an_orphan_that_the_next_prune_removes",
    ),
    Row(
        "lock held by another run",
        "lock object",
        "exit 6 naming the holder",
        "tests/test_backup_locks.py::"
        "test_backup_db_exits_6_at_once_naming_the_holder_of_the_database_lock",
    ),
    # -- bad input
    Row(
        "generated YAML documents (hypothesis)",
        "config file",
        "ConfigError in one line naming the key path, or a valid config; never a traceback",
        f"{BI}::test_generated_yaml_documents_never_raise_anything_but_a_config_error",
    ),
    Row(
        "arbitrary text as config (hypothesis)",
        "config file",
        "exit 3 in one line (or valid); never a traceback",
        f"{BI}::test_arbitrary_text_as_config_is_one_line_exit_3_or_valid",
    ),
    Row(
        "manifest of an unknown schema version",
        "repository object",
        "exit 4 naming the manifest and the version",
        f"{BI}::test_broken_manifests_exit_4_naming_the_manifest_and_the_problem[schema]",
    ),
    Row(
        "manifest with malformed JSON",
        "repository object",
        "exit 4 naming the manifest",
        f"{BI}::test_broken_manifests_exit_4_naming_the_manifest_and_the_problem[json]",
    ),
    Row(
        "manifest missing a field / not an object",
        "repository object",
        "exit 4 naming the field",
        f"{BI}::test_broken_manifests_exit_4_naming_the_manifest_and_the_problem[field]",
    ),
    Row(
        "backup id that does not exist",
        "command line",
        "exit 4 naming it (show, verify, drill, restore)",
        f"{BI}::test_a_backup_id_that_does_not_exist_exits_4_naming_it",
    ),
    Row(
        "--before malformed or in the future",
        "command line",
        "usage error, exit 2",
        "tests/test_restore_db.py::test_restore_with_a_malformed_before_time_is_a_usage_error",
    ),
    Row(
        "unknown option, bad integer, missing value, unknown command",
        "command line",
        "usage error, exit 2, no traceback",
        f"{BI}::test_command_line_mistakes_are_usage_errors_exit_2_without_traceback",
    ),
    # -- encryption and secrets
    Row(
        "encrypted repository read raw",
        "every stored object",
        "no plaintext row; drill, restore, verify --read-data pass with the identity",
        f"{EN}::test_encrypted_repository_holds_no_plaintext_and_restores_with_the_identity",
    ),
    Row(
        "wrong or missing age identity",
        "config / environment",
        "exit 3 in one line (drill, restore, verify --read-data), nothing provisioned",
        f"{EN}::test_a_wrong_or_missing_identity_exits_3_with_one_line",
    ),
    Row(
        "encrypted frames reordered, truncated or tampered",
        "ciphertext",
        "IntegrityError",
        f"{EN}::test_frames_detect_reordering_truncation_and_tampering",
    ),
    Row(
        "SSE-S3 requested",
        "config",
        "every object stored with AES256",
        f"{EN}::test_sse_options_are_passed_to_s3",
    ),
    Row(
        "canary secrets (PG password, S3 key, webhook URL, age identity)",
        "every byte produced, child argv",
        "found nowhere; DSNs quoting a password are masked in errors",
        "tests/test_secret_hygiene.py::"
        "test_canary_secrets_appear_in_no_output_report_object_or_argv",
    ),
    Row(
        "hostile password (quotes, $, spaces)",
        "PostgreSQL role",
        "works; in no argv, log or manifest",
        "tests/test_secrets.py::test_hostile_password_works_and_appears_in_no_log_manifest_or_argv",
    ),
    Row(
        "fault proxy itself",
        "proxy",
        "each rule does what the tests rely on",
        "tests/test_s3proxy.py",
    ),
]


ER = "tests/test_escaping_reports.py"
EO = "tests/test_escaping_outputs.py"
BO = "tests/test_bombs.py"
RS = "tests/test_files_restore_safety.py"
MV = "tests/test_manifest_validity.py"
EV = "tests/test_evidence.py"

#: what an attacker who can name a database or write to the bucket tries (issue 13)
HOSTILE: list[Row] = [
    Row(
        "database, table and Odoo module named with markup (`<img src=x onerror=…>`)",
        "PostgreSQL names, manifest",
        "report.html opened in Chromium runs no script and shows the names as text",
        f"{ER}::test_report_html_of_a_drill_with_markup_in_names_runs_no_script",
    ),
    Row(
        "markup injected into a rendered report.html",
        "the page itself",
        "its Content-Security-Policy runs no script",
        f"{ER}::test_the_pages_policy_stops_markup_that_escaped_escaping",
    ),
    Row(
        "hostile drill_id and backup id in an evidence report.json",
        "repository object",
        "`drill history --html` escaped, no script",
        f"{ER}::test_history_page_with_a_hostile_report_runs_no_script",
    ),
    Row(
        "table name with `</td>`, `<`, `|` in a failing check",
        "report.md",
        "one table row per check, no raw HTML",
        f"{ER}::test_report_md_keeps_one_row_per_check_and_no_html",
    ),
    Row(
        "database and file names with ESC sequences and BEL",
        "repository objects, filestore",
        "`list`, `show`, `verify`, error and log lines show `\\x1b`, no raw control byte",
        f"{EO}::test_list_show_verify_show_a_database_names_escape_sequences",
    ),
    Row(
        "database named `<!channel> <http://…|click> &`",
        "webhook text",
        "Slack entities; the data field unchanged",
        f"{EO}::test_webhook_text_escapes_a_hostile_database_name",
    ),
    Row(
        "database named with `'`, `=`, `|`, newline",
        "Nagios output",
        "one line, no forged perfdata, labels quoted",
        f"{EO}::test_nagios_output_escapes_names_in_text_and_perfdata",
    ),
    Row(
        "restore db onto a database holding only a materialized view and a large object "
        "(or a function, schema, type, view)",
        "target database",
        "refused without --force; with it renamed aside; nothing dropped",
        "tests/test_restore_db.py::test_a_target_holding_any_object_of_its_own_is_refused_then_kept_aside",
    ),
    Row(
        "filestore object that expands past its recorded size (bomb)",
        "repository object, RLIMIT_FSIZE",
        "restore files and verify --read-data exit 4 naming it, nothing past the size written",
        f"{BO}::test_a_filestore_object_bomb_stops_restore_and_verify_at_the_recorded_size",
    ),
    Row(
        "dump that expands past its recorded raw size (bomb)",
        "repository object, RLIMIT_FSIZE",
        "verify --read-data and restore db exit 4 naming it; no database created",
        f"{BO}::test_a_dump_bomb_stops_verify_read_data_at_the_recorded_raw_size",
    ),
    Row(
        "custom-format dump bomb",
        "repository object",
        "restore db exits 4, creates nothing",
        f"{BO}::test_a_custom_format_dump_bomb_stops_restore_db_and_creates_nothing",
    ),
    Row(
        "snapshot document that expands to 512 MiB",
        "repository object",
        "list files and prune stay in bounded memory; verify and restore exit 4 naming it",
        f"{BO}::test_a_snapshot_document_bomb_is_refused_in_bounded_memory",
    ),
    Row(
        "oversized manifest",
        "repository object",
        "named, not read past its limit",
        f"{BO}::test_an_oversized_manifest_is_named_and_not_read_past_its_limit",
    ),
    Row(
        "snapshot with a symlink to outside, then a file under it",
        "repository object",
        "nothing created outside the target, exit 4",
        f"{RS}::test_a_snapshot_symlink_then_a_file_under_it_creates_nothing_outside_the_target",
    ),
    Row(
        "symlink planted in the target before a --force restore",
        "target directory",
        "never followed",
        f"{RS}::test_a_symlink_already_in_the_target_is_never_followed",
    ),
    Row(
        "setuid, setgid and sticky bits in a snapshot",
        "repository object",
        "restored without them unless --keep-special-bits",
        f"{RS}::test_setuid_setgid_and_sticky_bits_are_restored_only_when_asked_for",
    ),
    Row(
        "a fresh local repository under umask 022",
        "local directory",
        "directories 0700, files 0600; systemd units UMask=0077",
        "tests/test_repo_permissions.py",
    ),
    Row(
        "manifest whose object is `../<other id>/dump.pgdump.zst`",
        "repository object",
        "verify and show exit 4 naming the manifest",
        f"{MV}::test_verify_of_a_manifest_pointing_at_another_backups_dump_exits_4_naming_it",
    ),
    Row(
        "manifest whose id is another backup's",
        "repository object",
        "prune deletes nothing, exit 4 naming it",
        f"{MV}::test_prune_of_a_manifest_whose_id_is_another_backups_deletes_nothing_and_exits_4",
    ),
    Row(
        "manifest dated years ahead",
        "repository object",
        "verify exits 4, list warns, drill and restore refuse it",
        f"{MV}::test_a_manifest_dated_in_the_future_is_flagged_by_verify_list_refused_by_drill_restore",
    ),
    Row(
        "a backup or snapshot dated in the future",
        "repository object",
        "status never OK with a negative age",
        f"{MV}::test_status_never_reports_a_backup_or_snapshot_dated_in_the_future_as_ok",
    ),
    Row(
        "snapshot with another id, an entry sha256 `../..`, or dated ahead",
        "repository object",
        "verify and restore files exit 4 naming it; prune deletes nothing",
        "tests/test_snapshot_validity.py",
    ),
    Row(
        "prune during the first backup of a new files source, and the other order",
        "race, forced at the pause point",
        "no object a committed snapshot references is swept; the backup waits or exits 6",
        "tests/test_prune_files_race.py",
    ),
    Row(
        "FAIL edited into PASS in an evidence report.html or report.md",
        "repository object",
        "`drill history --verify` exits 4 naming the drill and the file",
        f"{EV}::test_history_verify_names_the_drill_whose_report_html_or_md_was_edited",
    ),
    Row(
        "one byte of a signed report changed, a report re-signed with another key",
        "repository object",
        "`drill history --verify --public-key` exits 4 naming the drill",
        f"{EV}::test_signed_history_verifies_with_the_public_key_and_names_the_drill_that_does_not",
    ),
    Row(
        "evidence rewritten on a bucket with object lock",
        "S3 object lock",
        "evidence written under GOVERNANCE retention; a new version is named by --verify",
        f"{EV}::test_evidence_is_written_under_object_lock_retention_where_the_bucket_has_it",
    ),
    Row(
        "arbitrary command lines (hypothesis)",
        "command line",
        "exit 0-6, errors named in one line; never a traceback or internal error",
        "tests/test_no_internal_error.py::test_arbitrary_command_lines_never_make_an_internal_error",
    ),
    Row(
        "arbitrary config documents (hypothesis)",
        "config file",
        "exit 0-6, never a traceback or internal error",
        "tests/test_no_internal_error.py::test_arbitrary_configuration_never_makes_an_internal_error",
    ),
    Row(
        "mutated manifests, snapshots (a file under a dangling symlink), locks, "
        "drill reports (hypothesis)",
        "repository objects",
        "list, show, verify, status, prune, history, restore files, backup files, unlock: "
        "exit 0-6, never an internal error",
        "tests/test_no_internal_error.py::"
        "test_arbitrary_repository_documents_never_make_an_internal_error",
    ),
    Row(
        "restore db --to a DSN whose port is no port (`:notaport`, 0, 99999999)",
        "command line",
        "exit 3 in one line",
        "tests/test_bad_input_seen.py::test_restore_db_to_a_dsn_whose_port_is_no_port_is_a_config_error",
    ),
    Row(
        'lock object with pid 10**30 or "abc", bad JSON, missing fields',
        "repository object",
        "a foreign lock, named, exit 6; never taken over, never an internal error",
        "tests/test_unlock.py::test_a_malformed_lock_is_a_foreign_lock_named_never_an_internal_error",
    ),
    Row(
        "a lock forged to expire in 2099",
        "repository object",
        "backup exits 6 naming holder, since, expiry and `backdrill unlock SCOPE`",
        "tests/test_unlock.py::test_a_forged_lock_expiring_in_2099_is_named_with_its_expiry_and_how_to_clear_it",
    ),
    Row(
        "HEAD requests, idle clients, more clients than the cap, clients hanging up early",
        "`serve` over HTTP",
        "HEAD answered without a body; idle closed after the read timeout; the cap holds; "
        "one log line, no traceback",
        "tests/test_serve_http.py",
    ),
]


def node_ids() -> list[str]:
    """What pytest runs: each function once (its parameters all run)."""
    seen: list[str] = []
    for row in [*MATRIX, *HOSTILE]:
        base = row.test.split("[", 1)[0]
        if base not in seen:
            seen.append(base)
    return seen


def results(junit: Path) -> dict[str, str]:
    """node id -> passed / failed / skipped, from the JUnit XML."""
    out: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314
        module = case.get("classname", "").replace(".", "/")
        node = f"{module}.py::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            out[node] = "failed"
        elif case.find("skipped") is not None:
            out[node] = "skipped"
        else:
            out[node] = "passed"
    return out


def row_status(row: Row, outcome: dict[str, str]) -> str:
    matched = [
        status
        for node, status in outcome.items()
        if node == row.test
        or node.startswith(row.test + "[")
        or (row.test.endswith(".py") and node.startswith(row.test + "::"))
    ]
    if not matched:
        return "not run"
    if "failed" in matched:
        return "FAILED"
    return "passed" if "passed" in matched else "skipped"


def _table(rows: list[Row], statuses: list[str]) -> list[str]:
    lines = []
    for i, (row, status) in enumerate(zip(rows, statuses, strict=True), 1):
        cells = [str(i), row.fault, row.where, row.expected, f"`{row.test}`", status]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def render(outcome: dict[str, str], seconds: float, command: str) -> str:
    statuses = [row_status(r, outcome) for r in MATRIX]
    hostile = [row_status(r, outcome) for r in HOSTILE]
    passed = statuses.count("passed") + hostile.count("passed")
    rows = len(MATRIX) + len(HOSTILE)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    lines = [
        "# Reliability: the fault matrix",
        "",
        "Every fault and bad input below is injected by a test against the real things: "
        "PostgreSQL servers, a moto S3 server over HTTP (behind the fault-injecting proxy "
        "of `tests/helpers/s3proxy.py` for network and storage faults), real subprocesses "
        "and signals. Each row ends in a good backup or a clear error, never in a silent "
        "half-backup, a lost good backup or a leaked secret.",
        "",
        "This file is written by `scripts/reliability_report.py`, which runs the tests "
        "named here and records the result; do not edit the table by hand.",
        "",
        "## Last run",
        "",
        f"- finished: {when}",
        f"- result: **{passed} of {rows} rows passed**"
        + ("" if passed == rows else " (see the rows not marked passed)"),
        f"- tests run: {len(outcome)} ({sum(v == 'passed' for v in outcome.values())} passed, "
        f"{sum(v == 'failed' for v in outcome.values())} failed, "
        f"{sum(v == 'skipped' for v in outcome.values())} skipped) in {seconds:.0f} s",
        f"- Python {platform.python_version()} on {platform.system()} {platform.machine()}",
        f"- command: `{command}`",
        "",
        "## Matrix",
        "",
        "| # | fault | where injected | expected outcome | test | result |",
        "|---|---|---|---|---|---|",
    ]
    lines += _table(MATRIX, statuses)
    lines += [
        "",
        "## Hostile input",
        "",
        "What someone who can name a database or a file, or write to the bucket, tries: "
        "each case ends in escaped output, a named integrity error (exit 4) or a refusal, "
        "never in a script run, a file written outside its target, memory or disk "
        "exhausted, another backup's data deleted, or evidence quietly rewritten.",
        "",
        "| # | input | where | expected outcome | test | result |",
        "|---|---|---|---|---|---|",
    ]
    lines += _table(HOSTILE, hostile)
    lines += [
        "",
        "## Retry policy",
        "",
        "Transient storage faults (HTTP 500/502/503/504, SlowDown and other throttling "
        "codes, connection resets, read timeouts, refused connections) are retried per "
        "request and per multipart part by `backdrill/runtime/retry.py` (tenacity): exponential "
        "backoff 0.5, 1, 2, 4, 8, 16 s (capped at 20 s) plus up to 0.5 s of jitter, at "
        "most 8 attempts and 90 s (`storage.retry`). botocore's own retries are off "
        "(`total_max_attempts: 1`). Permanent faults (AccessDenied, InvalidAccessKeyId, "
        "SignatureDoesNotMatch, NoSuchBucket, DNS failure) are not retried. A broken "
        "download resumes with a ranged GET pinned to the ETag. PostgreSQL connections "
        "at start are retried 5 times over about 8 s when refused or starting up; a wrong "
        "password or a missing database is not retried.",
        "",
        "After a failure, the clean-up that talks to the store (aborting the multipart "
        "upload, removing uncommitted objects, releasing the lock) keeps the same backoff "
        "for up to 300 s more (`storage.retry.cleanup_seconds`): a failed run waits for an "
        "outage to end rather than leave an open upload and a lock behind. After SIGINT or "
        "SIGTERM it tries twice within 2 s instead, to exit within 10 s; whatever it could "
        "not remove, the next `prune` does, and the log says so.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="list the tests, run nothing")
    parser.add_argument(
        "--from-junit",
        type=Path,
        metavar="XML",
        help="run nothing: take the results of a whole-suite run made with --junitxml=XML",
    )
    args, extra = parser.parse_known_args()
    nodes = node_ids()
    if args.from_junit is not None:
        outcome = results(args.from_junit)
        suite = ET.parse(args.from_junit).getroot()  # noqa: S314 - our own pytest's file
        seconds = float(next(suite.iter("testsuite")).get("time") or 0)
        command = "pytest --junitxml=XML (the whole suite), then this script --from-junit XML"
        return _write(outcome, seconds, command)
    if args.dry_run:
        print("\n".join(nodes))
        rows = len(MATRIX) + len(HOSTILE)
        print(f"{rows} rows, {len(nodes)} test functions", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            *extra,
            *nodes,
        ]
        started = time.monotonic()
        subprocess.run(argv, cwd=ROOT, check=False)
        seconds = time.monotonic() - started
        outcome = results(junit) if junit.exists() else {}
    command = "python scripts/reliability_report.py" + (" " + " ".join(extra) if extra else "")
    return _write(outcome, seconds, command)


def _write(outcome: dict[str, str], seconds: float, command: str) -> int:
    DOC.write_text(render(outcome, seconds, command))
    every = [*MATRIX, *HOSTILE]
    failed = [r.fault for r in every if row_status(r, outcome) != "passed"]
    print(f"wrote {DOC.relative_to(ROOT)}: {len(every) - len(failed)} of {len(every)} passed")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
