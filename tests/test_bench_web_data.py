"""bench/web_data.py builds what the desk would have written: every row checked on a small build.

The 1 M-ticket benchmark fills ``messages.search_text`` in SQL (5 M rows,
no Python pass); these tests build 600 tickets the same way and compare
every message's column with ``search_index.message_text`` of the row, the
directory's keys with ``customer_key``/``contact_key``, and the
conversation columns with what the benchmark says it builds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from bench.web_data import build
from madoguchi.ticketing.models import Contact, Customer, Message
from madoguchi.ticketing.search_index import contact_key, customer_key, message_text
from madoguchi.ticketing.vocabulary import Channel

pytestmark = [pytest.mark.postgres]

TICKETS, PER_TICKET = 600, 5


@pytest.fixture(scope="module")
def built(postgres_databases: object) -> Iterator[psycopg.Connection]:
    admin = postgres_databases.admin_url  # type: ignore[attr-defined]
    name = f"madoguchi_test_bench_{uuid.uuid4().hex[:8]}"
    build(admin, name, TICKETS, PER_TICKET)
    try:
        with psycopg.connect(f"{admin}/{name}") as conn:
            yield conn
    finally:
        with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def test_every_message_search_text_is_the_desks_own(built: psycopg.Connection) -> None:
    rows = built.execute("SELECT channel, subject, text, sender, sender_name, recipients, cc, "
                         "search_text FROM messages ORDER BY id").fetchall()
    assert len(rows) == TICKETS * PER_TICKET
    for channel, subject, text, sender, name, recipients, cc, search_text in rows:
        message = Message(channel=Channel(channel), subject=subject, text=text, sender=sender,
                          sender_name=name, recipients=recipients, cc=cc)
        assert search_text == message_text(message)
    # Folding did something here: the phrase with CSV is found in lower case only.
    assert any("csv出力" in r[7] and "CSV出力" in r[2] for r in rows)
    assert sum("見積書の再送付" in r[7] for r in rows) == len(
        [g for g in range(1, TICKETS * PER_TICKET + 1) if g % 2000 == 7])


def test_directory_keys_are_the_desks_own(built: psycopg.Connection) -> None:
    for company, department, key in built.execute(
            "SELECT company, department, search_key FROM customers"):
        assert key == customer_key(Customer(company=company, department=department))
    for name, phone, fax, key in built.execute("SELECT name, phone, fax, search_key FROM contacts"):
        assert key and key == contact_key(Contact(name=name, phone=phone, fax=fax))


def test_conversation_columns_and_history(built: psycopg.Connection) -> None:
    by_state = dict(built.execute(
        "SELECT status || '/' || state, count(*) FROM tickets GROUP BY 1").fetchall())
    assert by_state == {"closed/closed": 570, "open/new": 12, "open/customer_replied": 6,
                        "pending/pending": 6, "pending/waiting": 6}
    # Every ticket still open has a response due: the first one, or the next after a reply.
    assert built.execute("SELECT count(*) FROM tickets WHERE status <> 'closed' "
                         "AND response_due IS NULL").fetchone() == (0,)
    assert built.execute(
        "SELECT count(*) FROM tickets WHERE state = 'customer_replied' AND (next_response_due "
        "IS DISTINCT FROM response_due OR customer_replied_at IS NULL "
        "OR first_responded_at IS NULL)").fetchone() == (0,)
    assert built.execute("SELECT count(*) FROM ticket_events").fetchone() == (4 * TICKETS,)


def test_indexes_are_the_migrations_own(built: psycopg.Connection,
                                        postgres_databases: object) -> None:
    """The indexes set aside for the load are all there again, defined as the migrations did."""
    def indexes(conn: psycopg.Connection) -> set[str]:
        return {r[0] for r in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'").fetchall()}

    template = postgres_databases.template  # type: ignore[attr-defined]
    admin = postgres_databases.admin_url  # type: ignore[attr-defined]
    with psycopg.connect(f"{admin}/{template}") as migrated:
        assert indexes(built) == indexes(migrated)
