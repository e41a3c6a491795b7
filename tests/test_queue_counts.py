"""The queue's six counts in one statement, and tickets.triage_flags kept by the database.

``queries.view_counts`` must give what ``queries.queue_count`` gives for each
view, and the トリアージ count from ``tickets.triage_flags`` (migration 0016's
triggers) what the flags themselves say, whoever writes them (ORM or Core),
on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, delete, func, inspect, select, text, update
from sqlalchemy.orm import Session

from madoguchi.ticketing.db import alembic_config, upgrade
from madoguchi.ticketing.models import (
    Channel,
    Flag,
    StaffUser,
    Ticket,
    TicketFlag,
    TicketStatus,
)
from madoguchi.ticketing.queues import ACTIVE, ANY_TRIAGE, TRIAGE_FLAGS, flagged
from madoguchi.ticketing.vocabulary import Role
from madoguchi.web import queries
from madoguchi.web.queue_pages import VIEWS
from tests.postgres import PostgresDatabases

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
DAY_END = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)


def _ticket(n: int, status: TicketStatus, **fields: object) -> Ticket:
    return Ticket(number=f"T-2026-{n:06d}", status=status, channel=Channel.EMAIL,
                  subject="件名", received_at=NOW, **fields)


def _triage_by_flags(s: Session) -> int:
    """The トリアージ count as the flags define it (the semi-join 0016 replaced)."""
    return int(s.scalar(select(func.count()).select_from(Ticket).where(
        ACTIVE, flagged(list(TRIAGE_FLAGS)))) or 0)


def _triage(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(Ticket).where(*ANY_TRIAGE)) or 0)


def test_triage_flags_follow_every_write_of_flags(database_url: str) -> None:
    engine = create_engine(database_url)
    with Session(engine) as s:
        open_ticket, closed = _ticket(1, TicketStatus.OPEN), _ticket(2, TicketStatus.CLOSED)
        s.add_all([open_ticket, closed])
        s.commit()
        for flag in Flag:  # each flag alone, added through the ORM, removed by Core
            open_ticket.flags.append(TicketFlag(flag=flag))
            closed.flags.append(TicketFlag(flag=flag))
            s.commit()
            expected = 1 if flag in TRIAGE_FLAGS else 0
            assert (_triage(s), _triage_by_flags(s)) == (expected, expected), flag
            s.execute(delete(TicketFlag).where(TicketFlag.flag == flag))
            s.commit()
            s.expire_all()
            assert (_triage(s), _triage_by_flags(s)) == (0, 0), flag
        # Two triage flags on one ticket: it counts once, and stays until both are gone.
        open_ticket.flags += [TicketFlag(flag=Flag.UNREADABLE_FAX),
                              TicketFlag(flag=Flag.UNREGISTERED_SENDER)]
        s.commit()
        assert _triage(s) == 1
        s.execute(delete(TicketFlag).where(TicketFlag.flag == Flag.UNREADABLE_FAX))
        s.commit()
        assert (_triage(s), _triage_by_flags(s)) == (1, 1)
        # A flag changed in place (a Core UPDATE) moves in or out of triage.
        s.execute(update(TicketFlag).values(flag=Flag.URGENT))
        s.commit()
        assert (_triage(s), _triage_by_flags(s)) == (0, 0)
        s.execute(update(TicketFlag).values(flag=Flag.CONTRACT_EXPIRED))
        s.commit()
        assert (_triage(s), _triage_by_flags(s)) == (1, 1)
        # Closing the ticket takes it out of the count; reopening puts it back.
        s.execute(update(Ticket).where(Ticket.id == open_ticket.id).values(
            status=TicketStatus.CLOSED))
        s.commit()
        assert _triage(s) == 0
        s.execute(update(Ticket).where(Ticket.id == open_ticket.id).values(
            status=TicketStatus.OPEN))
        s.commit()
        assert (_triage(s), _triage_by_flags(s)) == (1, 1)
        # A ticket deleted takes its flags with it (the cascade fires the trigger too).
        s.execute(delete(Ticket).where(Ticket.id == closed.id))
        s.commit()
        assert (_triage(s), _triage_by_flags(s)) == (1, 1)
    engine.dispose()


def test_view_counts_are_each_views_own_count(database_url: str) -> None:
    engine = create_engine(database_url)
    with Session(engine) as s:
        me = StaffUser(login="me", name="私", email="", password_hash="x", role=Role.AGENT)
        other = StaffUser(login="other", name="他", email="", password_hash="x",
                          role=Role.AGENT)
        s.add_all([me, other])
        s.flush()
        soon, later = NOW + timedelta(hours=2), NOW + timedelta(days=3)
        n = 0
        for status in (TicketStatus.OPEN, TicketStatus.PENDING, TicketStatus.CLOSED):
            for assignee in (me.id, other.id, None):
                for due, responded in ((soon, None), (later, None), (soon, NOW)):
                    n += 1
                    t = _ticket(n, status, assignee_id=assignee, first_response_due=due,
                                first_responded_at=responded)
                    if n % 4 == 0:
                        t.flags.append(TicketFlag(flag=Flag.UNKNOWN_SUPPORT_NUMBER))
                    if n % 5 == 0:
                        t.flags.append(TicketFlag(flag=Flag.URGENT))
                    s.add(t)
        s.commit()
        presets = [queries.QueueFilters.from_params(dict(v.params)) for v in VIEWS]
        *counts, triage = queries.view_counts(s, presets, user_id=me.id, day_end=DAY_END,
                                              also=[ANY_TRIAGE])
        separate = [queries.queue_count(s, p, user_id=me.id, day_end=DAY_END) for p in presets]
        assert counts == separate
        assert separate == [6, 6, 6, 9, 18]  # mine, unassigned, today, waiting, all
        assert triage == _triage_by_flags(s) == 4
        with pytest.raises(ValueError):
            queries.view_counts(s, [queries.QueueFilters(status="closed")], user_id=me.id)
    engine.dispose()


def _carried_forward(url: str) -> None:
    """A desk at 0015 with flags gets its tickets' triage_flags, and goes back down."""
    upgrade(url, "0015")
    engine = create_engine(url)
    with engine.begin() as conn:
        for i, status in enumerate(("open", "open", "closed"), 1):
            conn.execute(text(
                "INSERT INTO tickets (id, number, status, channel, subject, received_at) "
                "VALUES (:id, :n, :s, 'email', '件名', '2026-11-24 01:00:00+00:00')"),
                {"id": i, "n": f"T-2026-{i:06d}", "s": status})
        for ticket_id, flag in ((1, "unreadable_fax"), (1, "unregistered_sender"),
                                (2, "urgent"), (3, "contract_expired")):
            conn.execute(text("INSERT INTO ticket_flags (ticket_id, flag) VALUES (:t, :f)"),
                         {"t": ticket_id, "f": flag})
    upgrade(url)
    with engine.connect() as conn:
        found = dict(conn.execute(text("SELECT id, triage_flags FROM tickets")).all())
    assert found == {1: 2, 2: 0, 3: 1}
    command.downgrade(alembic_config(url), "0015")
    assert "triage_flags" not in {c["name"] for c in inspect(engine).get_columns("tickets")}
    with engine.begin() as conn:  # no trigger left behind to name the dropped column
        conn.execute(text("INSERT INTO ticket_flags (ticket_id, flag) "
                          "VALUES (2, 'unreadable_fax')"))
    engine.dispose()


def test_a_sqlite_desk_at_0015_gets_its_triage_flags(tmp_path: Path) -> None:
    _carried_forward(f"sqlite:///{tmp_path / 'm.db'}")


def test_a_postgresql_desk_at_0015_gets_its_triage_flags(
    postgres_databases: PostgresDatabases,
) -> None:
    _carried_forward(postgres_databases.fresh_database())
