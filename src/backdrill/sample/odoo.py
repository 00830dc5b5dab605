"""An Odoo-shaped database with a matching filestore, generated at a chosen scale.

The tables carry the columns backdrill's drill checks read (``ir_attachment``,
``ir_module_module``, ``ir_config_parameter``, ``ir_cron``, ``ir_mail_server``,
``ir_model_data``, ``res_users``) and the bulk of a real Odoo database
(``mail_message`` with HTML bodies, ``account_move_line``, ``res_partner``).
``scale=1`` makes a few MB; row counts grow linearly with it.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

from backdrill.pg.connection import ConnParams

SCHEMA = """
CREATE TABLE res_partner (
    id serial PRIMARY KEY, name varchar NOT NULL, email varchar, phone varchar,
    street varchar, city varchar, is_company boolean DEFAULT false,
    active boolean DEFAULT true, create_date timestamp, write_date timestamp);
CREATE TABLE res_users (
    id serial PRIMARY KEY, login varchar NOT NULL UNIQUE,
    partner_id integer NOT NULL REFERENCES res_partner(id), active boolean DEFAULT true,
    password varchar);
CREATE TABLE ir_model_data (
    id serial PRIMARY KEY, module varchar NOT NULL, name varchar NOT NULL,
    model varchar NOT NULL, res_id integer, UNIQUE (module, name));
CREATE TABLE ir_module_module (
    id serial PRIMARY KEY, name varchar NOT NULL UNIQUE, state varchar NOT NULL,
    latest_version varchar, application boolean DEFAULT false);
CREATE TABLE ir_config_parameter (
    id serial PRIMARY KEY, key varchar NOT NULL UNIQUE, value text NOT NULL);
CREATE TABLE ir_cron (
    id serial PRIMARY KEY, cron_name varchar NOT NULL, active boolean DEFAULT true,
    interval_number integer DEFAULT 1, interval_type varchar DEFAULT 'days',
    nextcall timestamp NOT NULL DEFAULT now());
CREATE TABLE ir_mail_server (
    id serial PRIMARY KEY, name varchar NOT NULL, smtp_host varchar NOT NULL,
    smtp_port integer DEFAULT 25, smtp_encryption varchar DEFAULT 'none',
    smtp_user varchar, smtp_pass varchar, active boolean DEFAULT true, sequence integer);
CREATE TABLE mail_message (
    id serial PRIMARY KEY, model varchar, res_id integer, body text,
    author_id integer REFERENCES res_partner(id), message_type varchar NOT NULL,
    subject varchar, date timestamp);
CREATE INDEX mail_message_model_res_id_idx ON mail_message (model, res_id);
CREATE TABLE account_move (
    id serial PRIMARY KEY, name varchar NOT NULL, date date NOT NULL, state varchar NOT NULL,
    partner_id integer REFERENCES res_partner(id), amount_total numeric);
CREATE TABLE account_move_line (
    id serial PRIMARY KEY, move_id integer NOT NULL REFERENCES account_move(id),
    journal_id integer, company_id integer, company_currency_id integer,
    move_name varchar, parent_state varchar, date date NOT NULL, ref varchar,
    sequence integer, account_id integer NOT NULL, name varchar,
    debit numeric NOT NULL DEFAULT 0, credit numeric NOT NULL DEFAULT 0,
    balance numeric NOT NULL DEFAULT 0, amount_currency numeric, currency_id integer,
    amount_residual numeric, amount_residual_currency numeric, reconciled boolean,
    matching_number varchar, partner_id integer REFERENCES res_partner(id),
    tax_base_amount numeric, tax_line_id integer, display_type varchar,
    date_maturity date, quantity numeric, price_unit numeric, discount numeric,
    price_subtotal numeric, price_total numeric, product_id integer, product_uom_id integer,
    analytic_distribution jsonb, create_uid integer, create_date timestamp,
    write_uid integer, write_date timestamp, is_storno boolean, blocked boolean);
CREATE TABLE mail_tracking_value (
    id serial PRIMARY KEY, field_id integer NOT NULL, mail_message_id integer NOT NULL,
    old_value_integer integer, new_value_integer integer, old_value_float numeric,
    new_value_float numeric, old_value_char varchar, new_value_char varchar,
    old_value_datetime timestamp, new_value_datetime timestamp, currency_id integer,
    create_uid integer, create_date timestamp, write_uid integer, write_date timestamp);
CREATE INDEX account_move_line_move_id_idx ON account_move_line (move_id);
CREATE INDEX account_move_line_partner_id_idx ON account_move_line (partner_id);
CREATE TABLE ir_attachment (
    id serial PRIMARY KEY, name varchar NOT NULL, res_model varchar, res_id integer,
    type varchar NOT NULL DEFAULT 'binary', store_fname varchar, checksum varchar(40),
    file_size integer, mimetype varchar, db_datas bytea, create_date timestamp);
CREATE INDEX ir_attachment_checksum_idx ON ir_attachment (checksum);
"""

MODULES = [
    "base",
    "web",
    "mail",
    "contacts",
    "account",
    "sale",
    "purchase",
    "stock",
    "hr",
    "project",
]


@dataclass(frozen=True)
class SampleInfo:
    database: str
    filestore: Path
    attachments: int
    files: int
    database_uuid: str


def _bulk_sql(scale: float) -> list[str]:
    partners = max(20, int(200 * scale))
    messages = max(100, int(2000 * scale))
    moves = max(20, int(500 * scale))
    lines = moves * 8
    return [
        f"""INSERT INTO res_partner (name, email, phone, street, city, is_company,
                                     create_date, write_date)
            SELECT 'Partner ' || i, 'partner' || i || '@example.com',
                   '+1 555 ' || lpad(i::text, 6, '0'), i || ' Main Street',
                   (ARRAY['Brussels','Lyon','Austin','Pune','Lima'])[1 + i % 5], i % 7 = 0,
                   now() - (i || ' minutes')::interval, now()
            FROM generate_series(1, {partners}) AS i""",
        f"""INSERT INTO mail_message (model, res_id, body, author_id, message_type, subject, date)
            SELECT 'res.partner', 1 + i % {partners},
                   '<div><p>Hello ' || md5(i::text) || ',</p><p>'
                   || (ARRAY['Please find the invoice attached.','Meeting moved to Tuesday.',
                             'The order shipped today.','Thanks for the quick payment.'])
                        [1 + i % 4]
                   || ' Ref ' || md5((i * 31)::text) || ' ' || md5((i * 17)::text)
                   || '</p><ul><li>' || md5((i * 7)::text) || '</li><li>'
                   || md5((i * 13)::text) || '</li></ul><p>Regards,<br/>Partner '
                   || (1 + i % {partners}) || '</p></div>',
                   1 + i % {partners},
                   (ARRAY['comment','email','notification'])[1 + i % 3],
                   'Subject ' || i, now() - (i || ' seconds')::interval
            FROM generate_series(1, {messages}) AS i""",
        f"""INSERT INTO account_move (name, date, state, partner_id, amount_total)
            SELECT 'INV/2026/' || lpad(i::text, 6, '0'), date '2026-01-01' + i % 300,
                   (ARRAY['draft','posted','cancel'])[1 + i % 3], 1 + i % {partners},
                   round((i % 997) * 10.5, 2)
            FROM generate_series(1, {moves}) AS i""",
        f"""INSERT INTO account_move_line (move_id, journal_id, company_id,
                company_currency_id, move_name, parent_state, date, ref, sequence, account_id,
                name, debit, credit, balance, amount_currency, currency_id, amount_residual,
                amount_residual_currency, reconciled, matching_number, partner_id,
                tax_base_amount, tax_line_id, display_type, date_maturity, quantity,
                price_unit, discount, price_subtotal, price_total, product_id,
                product_uom_id, analytic_distribution, create_uid, create_date, write_uid,
                write_date, is_storno, blocked)
            SELECT 1 + i % {moves}, 1 + i % 7, 1, 2, 'INV/2026/' || lpad((i / 8)::text, 6, '0'),
                   (ARRAY['draft','posted','cancel'])[1 + i % 3],
                   date '2026-01-01' + i % 300, 'SO' || (i % 9973), 10 * (i % 8),
                   400000 + i % 50,
                   (ARRAY['Consulting services','Office chairs','Shipping costs',
                          'Software licence','Maintenance contract'])[1 + i % 5],
                   d, c, d - c, d - c, 2, CASE WHEN i % 4 = 0 THEN d - c ELSE 0 END,
                   CASE WHEN i % 4 = 0 THEN d - c ELSE 0 END, i % 4 <> 0,
                   CASE WHEN i % 4 <> 0 THEN 'P' || (i / 4) END, 1 + i % {partners},
                   CASE WHEN i % 8 = 7 THEN round(d * 5, 2) ELSE 0 END,
                   CASE WHEN i % 8 = 7 THEN 1 + i % 3 END,
                   (ARRAY['product','tax','payment_term'])[1 + (i % 8) / 6],
                   date '2026-01-31' + i % 300, 1 + i % 12, round((i % 997) * 1.75, 2),
                   (i % 5) * 2.5, round(d * 0.9, 2), round(d * 1.05, 2), 1 + i % 500, 1,
                   CASE WHEN i % 3 = 0 THEN ('{{"' || (1 + i % 40) || '": 100.0}}')::jsonb END,
                   2, timestamp '2026-01-01' + (i || ' minutes')::interval, 2,
                   timestamp '2026-01-02' + (i || ' minutes')::interval, false, false
            FROM (SELECT i,
                         CASE WHEN i % 2 = 0 THEN round((i % 1000) * 1.25, 2) ELSE 0 END AS d,
                         CASE WHEN i % 2 = 1 THEN round((i % 1000) * 1.25, 2) ELSE 0 END AS c
                  FROM generate_series(1, {lines}) AS i) AS g""",
        f"""INSERT INTO mail_tracking_value (field_id, mail_message_id, old_value_integer,
                new_value_integer, old_value_float, new_value_float, old_value_char,
                new_value_char, old_value_datetime, new_value_datetime, currency_id,
                create_uid, create_date, write_uid, write_date)
            SELECT 100 + i % 60, 1 + i % {messages}, i % 7, (i + 1) % 7,
                   round((i % 500) * 3.5, 2), round((i % 500) * 3.75, 2),
                   (ARRAY['draft','sent','sale','done'])[1 + i % 4],
                   (ARRAY['sent','sale','done','cancel'])[1 + i % 4],
                   timestamp '2026-01-01' + (i || ' minutes')::interval,
                   timestamp '2026-01-01' + ((i + 90) || ' minutes')::interval, 2, 2,
                   timestamp '2026-01-01' + (i || ' seconds')::interval, 2,
                   timestamp '2026-01-01' + (i || ' seconds')::interval
            FROM generate_series(1, {messages * 2}) AS i""",
    ]


def _static_rows(cur: object, db_uuid: str) -> None:
    from psycopg import Cursor

    assert isinstance(cur, Cursor)
    cur.execute(
        "INSERT INTO res_partner (name, email) VALUES ('Administrator', 'admin@example.com')"
    )
    cur.execute(
        "INSERT INTO res_users (login, partner_id, password) "
        "SELECT 'admin', id, 'pbkdf2-sha512$sample' FROM res_partner WHERE name = 'Administrator'"
    )
    cur.executemany(
        "INSERT INTO ir_module_module (name, state, latest_version) VALUES (%s, %s, '18.0.1.0')",
        [(m, "installed") for m in MODULES] + [("website", "uninstalled")],
    )
    cur.executemany(
        "INSERT INTO ir_config_parameter (key, value) VALUES (%s, %s)",
        [
            ("database.uuid", db_uuid),
            ("database.secret", uuid.uuid4().hex),
            ("database.create_date", "2026-01-01 00:00:00"),
            ("web.base.url", "https://erp.example.com"),
        ],
    )
    crons = [
        "Base: Auto-vacuum internal data",
        "Mail: Email Queue Manager",
        "Account: Post draft entries",
        "Fetchmail Service",
    ]
    for name in crons:
        cur.execute("INSERT INTO ir_cron (cron_name) VALUES (%s) RETURNING id", (name,))
        row = cur.fetchone()
        assert row is not None
        xml_name = "autovacuum_job" if "Auto-vacuum" in name else name.lower().replace(" ", "_")
        module = "base" if "Auto-vacuum" in name else "mail"
        cur.execute(
            "INSERT INTO ir_model_data (module, name, model, res_id) "
            "VALUES (%s, %s, 'ir.cron', %s)",
            (module, xml_name, row[0]),
        )
    cur.execute(
        "INSERT INTO ir_mail_server (name, smtp_host, smtp_port, smtp_encryption, smtp_user, "
        "smtp_pass, sequence) VALUES ('Production SMTP', 'smtp.example.com', 587, 'starttls', "
        "'odoo@example.com', 'sample-smtp-password', 10)"
    )


def _attachment_files(count: int, seed: int) -> list[tuple[str, bytes]]:
    """(name, content) pairs; about one in ten repeats an earlier content."""
    rng = random.Random(seed)  # noqa: S311 - reproducible sample data
    words = ["invoice", "order", "delivery", "contract", "photo", "report", "scan", "quote"]
    files: list[tuple[str, bytes]] = []
    for i in range(count):
        if files and i % 10 == 9:
            files.append((f"copy-of-{files[-1][0]}", files[-1][1]))
            continue
        size = rng.randint(512, 16 * 1024)
        text = " ".join(rng.choice(words) for _ in range(size // 6)).encode()
        noise = rng.randbytes(size // 4)
        files.append((f"{rng.choice(words)}-{i}.pdf", b"%PDF-1.4\n" + text + noise))
    return files


def write_attachments(
    params: ConnParams, filestore: Path, count: int, *, seed: int = 18
) -> tuple[int, int]:
    """Add ``count`` filestore-backed attachments; return (rows, distinct files)."""
    written: set[str] = set()
    rows: list[tuple[str, str, str, int]] = []
    for name, content in _attachment_files(count, seed):
        sha1 = hashlib.sha1(content).hexdigest()  # noqa: S324 - Odoo's content address
        store_fname = f"{sha1[:2]}/{sha1}"
        if sha1 not in written:
            target = filestore / store_fname
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            written.add(sha1)
        rows.append((name, store_fname, sha1, len(content)))
    with params.connect() as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ir_attachment (name, res_model, res_id, store_fname, checksum, "
            "file_size, mimetype, create_date) "
            "VALUES (%s, 'res.partner', 1, %s, %s, %s, 'application/pdf', now())",
            rows,
        )
    return len(rows), len(written)


def create_sample(
    params: ConnParams, database: str, filestore: Path, *, scale: float = 1.0
) -> SampleInfo:
    """Create ``database`` on the server of ``params`` and its filestore directory."""
    with params.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    db_params = params.with_db(database)
    db_uuid = str(uuid.uuid4())
    with db_params.connect() as conn:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(SCHEMA)
            _static_rows(cur, db_uuid)
            for statement in _bulk_sql(scale):
                cur.execute(statement)
        conn.execute("ANALYZE")
    filestore.mkdir(parents=True, exist_ok=True)
    attachments, files = write_attachments(db_params, filestore, max(10, int(40 * scale)))
    return SampleInfo(database, filestore, attachments, files, db_uuid)
