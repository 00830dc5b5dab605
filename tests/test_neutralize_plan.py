"""The neutralization's statements, decided from a schema (pure), and its read-back
check."""

from __future__ import annotations

from backdrill.odoo.checks import check_neutralized
from backdrill.odoo.facts import Neutralization, NeutralState
from backdrill.odoo.neutralize_plan import Column, Plan, Table, plan_neutralization


def _col(
    name: str, type_name: str = "character varying", category: str = "S", **kw: bool
) -> Column:
    return Column(
        name,
        type_name,
        category,
        kw.get("not_null", False),
        kw.get("has_default", False),
        kw.get("writable", True),
    )


def _table(name: str, *columns: Column) -> Table:
    return Table(name, {c.name: c for c in columns})


SERIAL = _col("id", "integer", "N", not_null=True, has_default=True)
ACTIVE = _col("active", "boolean", "B", has_default=True)


def _mail_server(*extra: Column) -> Table:
    """An ir_mail_server of the columns the neutralization needs, no id, plus ``extra``."""
    return _table(
        "ir_mail_server",
        _col("name", not_null=True),
        _col("smtp_host", not_null=True),
        ACTIVE,
        *extra,
    )


def _odoo(**replace: Table | None) -> dict[str, Table]:
    tables: dict[str, Table | None] = {
        "ir_mail_server": _table(
            "ir_mail_server",
            SERIAL,
            _col("name", not_null=True),
            _col("smtp_host", not_null=True),
            _col("smtp_port", "integer", "N"),
            ACTIVE,
        ),
        "ir_cron": _table("ir_cron", SERIAL, ACTIVE),
        "ir_model_data": _table(
            "ir_model_data", SERIAL, _col("module"), _col("name"), _col("res_id", "integer", "N")
        ),
        "ir_config_parameter": _table(
            "ir_config_parameter", SERIAL, _col("key", not_null=True), _col("value", "text")
        ),
    }
    tables.update(replace)
    return {k: v for k, v in tables.items() if v is not None}


def _sql(plan: Plan, purpose: str) -> str:
    (statement,) = [s for s in plan.statements if s.purpose == purpose]
    return statement.query.as_string(None)


def test_a_complete_schema_gets_every_statement_and_no_problem() -> None:
    plan = plan_neutralization(_odoo())
    assert plan.problems == ()
    assert [s.purpose for s in plan.statements] == [
        "mail_servers_disabled",
        "mail_server_added",
        "crons_disabled",
        "marker_updated",
        "marker_inserted",
    ]
    added = _sql(plan, "mail_server_added")
    assert '"smtp_host"' in added and "'invalid'" in added and '"smtp_port"' in added
    assert '"smtp_encryption"' not in added  # not in this table: not written
    assert "autovacuum_job" in _sql(plan, "crons_disabled")
    assert "NOT EXISTS" in _sql(plan, "marker_inserted")


def test_not_null_columns_without_a_default_get_a_value_of_their_type() -> None:
    mail = _mail_server(
        _col("company_id", "integer", "N", not_null=True),
        _col("create_date", "timestamp without time zone", "D", not_null=True),
        _col("note", "text", not_null=True),
        _col("flags", "jsonb", "U", not_null=True),
    )
    plan = plan_neutralization(_odoo(ir_mail_server=mail))
    assert plan.problems == ()
    added = _sql(plan, "mail_server_added")
    assert '(SELECT coalesce(max("company_id"), 0) + 1 FROM "ir_mail_server")' in added
    assert "now()" in added and "'backdrill neutralization'" in added and "'{}'" in added


def test_a_not_null_column_of_an_unknown_type_is_a_problem() -> None:
    mail = _mail_server(_col("kind", "mail_kind", "E", not_null=True))
    plan = plan_neutralization(_odoo(ir_mail_server=mail))
    assert plan.problems == (
        "no dummy mail server can be added: ir_mail_server.kind (mail_kind) is NOT NULL "
        "without a default, and backdrill has no value for that type",
    )


def test_missing_tables_and_columns_are_problems_or_notes() -> None:
    plan = plan_neutralization(_odoo(ir_config_parameter=None, ir_model_data=None))
    assert plan.problems == (
        "no ir_config_parameter table with key and value: database.is_neutralized cannot be set",
    )
    assert plan.notes == ("no ir_model_data to find the autovacuum cron: every cron deactivated",)
    assert "autovacuum_job" not in _sql(plan, "crons_disabled")
    no_active = _table("ir_mail_server", _col("name"), _col("smtp_host"))
    assert plan_neutralization(_odoo(ir_mail_server=no_active)).problems == (
        "ir_mail_server has no active column to neutralize",
    )
    assert "no ir_mail_server table" in plan_neutralization(_odoo(ir_mail_server=None)).problems[0]
    fetchmail = _table("fetchmail_server", SERIAL)
    assert plan_neutralization(_odoo(fetchmail_server=fetchmail)).problems == (
        "fetchmail_server has no active column: it cannot be deactivated",
    )
    generated = _table("ir_cron", SERIAL, _col("active", "boolean", "B", writable=False))
    assert (
        "ir_cron has no active column" in plan_neutralization(_odoo(ir_cron=generated)).problems[0]
    )


def test_the_read_back_fails_unless_marked_and_no_real_mail_server_is_active() -> None:
    done = Neutralization(1, 3, 0, {"public.ir_mail_server": 1})
    ok = check_neutralized(done, NeutralState("True", 0))
    assert ok.status == "pass" and ok.detail.startswith("1 mail server(s) and 3 cron(s)")
    unmarked = check_neutralized(done, NeutralState(None, 0))
    assert unmarked.failed and "database.is_neutralized is None" in unmarked.detail
    live = check_neutralized(done, NeutralState("true", 2))
    assert live.failed and "2 active mail server(s) with a real host" in live.detail
    assert check_neutralized(done, NeutralState("true", None)).failed
