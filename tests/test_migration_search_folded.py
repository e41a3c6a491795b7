"""Migration 0014 folds a live desk's messages and directory for search, builds the
indexes over them, and goes back down (SQLite, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.orm import Session

from madoguchi.ticketing.db import alembic_config, upgrade
from madoguchi.ticketing.models import Customer
from madoguchi.ticketing.search import search
from tests.postgres import PostgresDatabases

pytestmark = pytest.mark.integration


def _carried_forward(url: str) -> None:
    upgrade(url, "0013")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO tickets (id, number, status, channel, subject, received_at, state, "
            "priority, tags) VALUES (1, 'T-2026-000001', 'open', 'email', 'ＣＳＶの件', "
            "'2026-11-24 01:00:00+00:00', 'new', 'normal', '[]')"))
        for i, (channel, subject, body, cc) in enumerate((
                ("email", "ＣＳＶの件", "ﾛｸﾞｲﾝ後に２０３１－０００３で請求", '["keiri@example.jp"]'),
                ("note", "ＣＳＶの件", "経理に確認中", "[]")), 1):
            conn.execute(text(
                "INSERT INTO messages (id, ticket_id, direction, channel, \"references\", "
                "sender, sender_name, recipients, cc, subject, received_at, text, "
                "unverified_sender) VALUES (:id, 1, 'in', :ch, '[]', 'Yamada@Example.JP', "
                "'山田', '[]', :cc, :s, '2026-11-24 01:00:00+00:00', :t, false)"),
                {"id": i, "ch": channel, "s": subject, "t": body, "cc": cc})
        conn.execute(text("INSERT INTO customers (id, company, department, address) "
                          "VALUES (1, '株式会社ＡＢＣ商事', '総務', '')"))
        conn.execute(text("INSERT INTO contacts (id, customer_id, name, phone, fax) "
                          "VALUES (1, 1, '山田 太郎', '03-1234-5678', '０３－１２３４－５６７９')"))
    upgrade(url)
    with Session(engine) as s:
        def numbers(q: str) -> list[str]:
            return [h.ticket.number for h in search(s, q).hits]

        for q in ("ログイン", "csv", "2031-0003", "請求", "keiri@example", "yamada@example"):
            assert numbers(q) == ["T-2026-000001"], q
        assert numbers("経理") == ["T-2026-000001"]  # the note, by its own text
        key = s.scalars(select(text("search_key")).select_from(text("contacts"))).one()
        assert "ヤマダ" in key and "0312345678" in key and "0312345679" in key
        assert "abc商事" in s.scalars(select(Customer.search_key)).one()
    command.downgrade(alembic_config(url), "0013")
    assert "search_text" not in {c["name"] for c in inspect(engine).get_columns("messages")}
    with engine.begin() as conn:  # 0002's index is back and follows the text again
        if conn.dialect.name == "sqlite":
            conn.execute(text("UPDATE messages SET text = '見積書の再送付' WHERE id = 1"))
            found = conn.execute(text(
                "SELECT rowid FROM messages_fts WHERE messages_fts MATCH '再送付'")).all()
            assert found == [(1,)]
        else:
            names = {r[0] for r in conn.execute(text(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'messages'"))}
            assert "ix_messages_text_trgm" in names and "ix_messages_search_bigrams" not in names
    engine.dispose()


def test_a_sqlite_desk_at_0013_is_folded_for_search(tmp_path: Path) -> None:
    _carried_forward(f"sqlite:///{tmp_path / 'm.db'}")


def test_a_postgresql_desk_at_0013_is_folded_for_search(
    postgres_databases: PostgresDatabases,
) -> None:
    _carried_forward(postgres_databases.fresh_database())
