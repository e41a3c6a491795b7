"""Migration 0007 carries a database made at 0004, with its data, forward (SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.orm import Session

from madoguchi.ticketing.db import alembic_config, upgrade
from madoguchi.ticketing.models import Contact, Contract, Ticket
from madoguchi.ticketing.rules.periods import PeriodKind, Plan
from tests.postgres import PostgresDatabases

pytestmark = pytest.mark.integration

_AT_0004 = [
    "INSERT INTO customers (id, company, department, address) "
    "VALUES (1, '株式会社さくら商事', '情報システム部', '東京都千代田区丸の内1-1-1')",
    "INSERT INTO contracts (id, customer_id, support_number, product, environment, "
    "period_start, period_end, sla_override) VALUES "
    "(10, 1, '203100010008', 'ChatLuck', 'RHEL 9', '2026-04-01', '2027-03-31', NULL), "
    "(11, 1, '203100020007', 'All Gather CRM', '', '2025-01-01', '2025-12-31', NULL)",
    "INSERT INTO contacts (id, customer_id, name, phone, fax) VALUES "
    "(100, 1, '山田 太郎', '', ''), (101, 1, '髙橋 花子', '', '')",
    "INSERT INTO contact_emails (id, contact_id, email) VALUES "
    "(1000, 100, 'yamada@sakura.example.jp'), (1001, 101, 'takahashi@sakura.example.jp')",
    # 山田 for one contract only; 髙橋 for none (entitled company-wide before 0007).
    "INSERT INTO contract_contacts (contract_id, contact_id) VALUES (10, 100)",
    "INSERT INTO tickets (id, number, status, channel, subject, support_number, customer_id, "
    "contract_id, contact_id, received_at) VALUES (1, 'T-2026-000001', 'open', 'email', "
    "'件名', '203100010008', 1, 10, 100, '2026-11-24 01:00:00+00:00')",
    "INSERT INTO ticket_flags (ticket_id, flag) VALUES (1, 'contract_expired')",
]


def _carried_forward(url: str) -> None:
    upgrade(url, "0004")
    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in _AT_0004:
            conn.execute(text(statement))
    upgrade(url)  # to the newest revision
    with Session(engine) as s:
        first, second = s.scalars(select(Contract).order_by(Contract.id)).all()
        assert [(p.kind, p.starts_on, p.ends_on, p.origin) for p in first.periods] == [
            (PeriodKind.CERTIFICATE, date(2026, 4, 1), date(2027, 3, 31), "migration")
        ]
        assert [(p.kind, p.starts_on, p.ends_on) for p in second.periods] == [
            (PeriodKind.CERTIFICATE, date(2025, 1, 1), date(2025, 12, 31))
        ]
        assert first.plan is Plan.CERTIFICATE and first.environment == "RHEL 9"
        assert (first.department, first.address) == ("情報システム部", "東京都千代田区丸の内1-1-1")
        assert (second.department, second.contract_code, second.users) == ("情報システム部", "",
                                                                            None)
        assert first.in_force_on(date(2026, 11, 24)) and not second.in_force_on(date(2026, 11, 24))
        yamada, takahashi = s.scalars(select(Contact).order_by(Contact.id)).all()
        assert [k.id for k in yamada.contracts] == [10]
        assert sorted(k.id for k in takahashi.contracts) == [10, 11]
        ticket = s.get_one(Ticket, 1)
        assert ticket.product is None and ticket.inquiry_kind is None
        assert [(f.flag.value, f.detail) for f in ticket.flags] == [("contract_expired", None)]
        assert ticket.received_at == datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    engine.dispose()


def _downgrades(url: str) -> None:
    """Back to 0004: the contracts keep their dates; the periods' table is gone."""
    command.downgrade(alembic_config(url), "0004")
    engine = create_engine(url)
    with engine.connect() as conn:
        dates = conn.execute(text("SELECT period_start, period_end FROM contracts "
                                  "ORDER BY id")).all()
        columns = {c["name"] for c in inspect(conn).get_columns("contracts")}
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert [tuple(str(d) for d in row) for row in dates] == [
        ("2026-04-01", "2027-03-31"), ("2025-01-01", "2025-12-31")]
    assert "plan" not in columns and "contract_periods" not in tables
    upgrade(url)


def test_a_sqlite_database_made_at_0004_is_carried_forward(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _carried_forward(url)
    _downgrades(url)


def test_a_postgresql_database_made_at_0004_is_carried_forward(
    postgres_databases: PostgresDatabases,
) -> None:
    url = postgres_databases.fresh_database()
    _carried_forward(url)
    _downgrades(url)
