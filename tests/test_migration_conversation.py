"""Migration 0009 reads the tickets of a live desk into the conversation's states, and goes
back down (SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.orm import Session

from madoguchi.ticketing.db import alembic_config, upgrade
from madoguchi.ticketing.models import Ticket
from madoguchi.ticketing.vocabulary import ConversationState as State
from tests.postgres import PostgresDatabases

pytestmark = pytest.mark.integration

DUE = "2026-11-24 08:30:00+00:00"
_TICKETS = [  # number, status, first responded, assignee
    ("T-2026-000001", "open", None, None),
    ("T-2026-000002", "open", "2026-11-24 02:00:00+00:00", None),
    ("T-2026-000003", "pending", None, None),
    ("T-2026-000004", "closed", "2026-11-24 02:00:00+00:00", None),
]


def _carried_forward(url: str) -> None:
    upgrade(url, "0008")
    engine = create_engine(url)
    with engine.begin() as conn:
        for i, (number, status, responded, _) in enumerate(_TICKETS, 1):
            conn.execute(text(
                "INSERT INTO tickets (id, number, status, channel, subject, received_at, "
                "first_response_due, first_responded_at) VALUES (:id, :n, :s, 'email', '件名', "
                "'2026-11-24 01:00:00+00:00', :due, :r)"),
                {"id": i, "n": number, "s": status, "due": DUE, "r": responded})
    upgrade(url)
    due = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    with Session(engine) as s:
        found = {t.number: (t.state, t.response_due) for t in s.scalars(select(Ticket))}
    assert found == {
        "T-2026-000001": (State.NEW, due),  # nobody took it: the first response still open
        "T-2026-000002": (State.OPEN, None),
        "T-2026-000003": (State.PENDING, due),
        "T-2026-000004": (State.CLOSED, None),
    }
    command.downgrade(alembic_config(url), "0008")
    columns = {c["name"] for c in inspect(engine).get_columns("tickets")}
    assert "state" not in columns and "response_due" not in columns
    assert "ticket_events" not in inspect(engine).get_table_names()
    engine.dispose()


def test_a_sqlite_desk_at_0008_gets_its_tickets_states(tmp_path: Path) -> None:
    _carried_forward(f"sqlite:///{tmp_path / 'm.db'}")


def test_a_postgresql_desk_at_0008_gets_its_tickets_states(
    postgres_databases: PostgresDatabases,
) -> None:
    _carried_forward(postgres_databases.fresh_database())
