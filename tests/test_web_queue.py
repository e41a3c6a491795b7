"""The queue page: order by first-response due, SLA marks, badges, filters, keyset paging."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import Channel, Customer, Flag, Ticket, TicketStatus
from madoguchi.web.queries import Cursor, QueueFilters, queue_page
from tests.test_web_kit import (
    Staff,
    WebDesk,
    make_ticket,
    ticket,
)

_ROW = re.compile(r'<td class="number"><a href="/tickets/([^"]+)"')

pytest_plugins = ["tests.test_web_kit"]


def _numbers(html: str) -> list[str]:
    return _ROW.findall(html)


def _customer(wd: WebDesk, company: str) -> int:
    with wd.desk.factory() as s:
        return s.scalars(select(Customer.id).where(Customer.company == company)).one()


def test_open_tickets_come_soonest_due_first_with_overdue_and_due_soon_marked(
    webdesk: WebDesk, agent: Staff
) -> None:
    now = datetime.now(UTC)
    later = make_ticket(webdesk.desk, subject="明日まで", due=now + timedelta(days=1))
    no_due = make_ticket(webdesk.desk, subject="期限なし", due=None)
    overdue = make_ticket(webdesk.desk, subject="期限切れ", due=now - timedelta(hours=2))
    soon = make_ticket(webdesk.desk, subject="まもなく", due=now + timedelta(minutes=20))
    make_ticket(webdesk.desk, subject="完了済み", due=now - timedelta(days=3),
                status=TicketStatus.CLOSED)
    pending = make_ticket(webdesk.desk, subject="保留中", due=now + timedelta(hours=3),
                          status=TicketStatus.PENDING)
    html = agent.get("/queue").text
    assert _numbers(html) == [overdue, soon, pending, later, no_due]
    rows = dict(zip(_numbers(html), html.split('<td class="number">')[1:], strict=True))
    assert "期限超過" in html.split(f'/tickets/{overdue}"')[0].rsplit("<tr", 1)[1]
    assert "期限間近" in html.split(f'/tickets/{soon}"')[0].rsplit("<tr", 1)[1]
    assert 'class="sla-overdue"' in html and 'class="sla-soon"' in html
    assert "保留" in rows[pending]


def test_the_queue_shows_channel_customer_support_number_and_flags(
    webdesk: WebDesk, agent: Staff
) -> None:
    sakura = _customer(webdesk, "株式会社さくら商事")
    number = make_ticket(webdesk.desk, channel=Channel.FAX, customer_id=sakura,
                         flags=(Flag.CONTRACT_EXPIRED, Flag.UNREGISTERED_SENDER),
                         due=datetime.now(UTC) + timedelta(days=1))
    with transaction(webdesk.desk.factory) as s:
        s.scalars(select(Ticket).where(Ticket.number == number)).one().support_number = \
            "203100010008"
    row = agent.get("/queue").text.split(f'<td class="number"><a href="/tickets/{number}"')[1]
    row = row.split("</tr>")[0]
    for text in ("FAX", "株式会社さくら商事", "2031-0001-0008", "契約期間外", "未登録の送信者"):
        assert text in row


def test_filters_by_status_channel_flag_assignee_and_customer(
    webdesk: WebDesk, agent: Staff
) -> None:
    due = datetime.now(UTC) + timedelta(days=1)
    sakura = _customer(webdesk, "株式会社さくら商事")
    mail = make_ticket(webdesk.desk, due=due, customer_id=sakura,
                       assignee_id=webdesk.users["agent"])
    fax = make_ticket(webdesk.desk, due=due, channel=Channel.FAX,
                      flags=(Flag.UNREADABLE_FAX,), assignee_id=webdesk.users["boss"])
    closed = make_ticket(webdesk.desk, due=due, status=TicketStatus.CLOSED)
    cases = {
        "": [mail, fax],
        "?status=closed": [closed],
        "?status=all": [mail, fax, closed],
        "?status=pending": [],
        "?channel=fax": [fax],
        "?flag=unreadable_fax": [fax],
        "?assignee=me": [mail],
        "?assignee=none": [],
        f"?assignee={webdesk.users['boss']}": [fax],
        "?customer=さくら": [mail],
        f"?customer_id={sakura}&status=all": [mail],
        "?channel=bogus&flag=bogus&status=bogus": [mail, fax],
    }
    for query, expected in cases.items():
        assert sorted(_numbers(agent.get(f"/queue{query}").text)) == sorted(expected), query


def test_keyset_pages_walk_every_ticket_once_forward_and_back(webdesk: WebDesk) -> None:
    base = datetime(2026, 12, 1, tzinfo=UTC)
    for i in range(17):
        # Ties on the due time, and tickets without one, are ordered by id.
        make_ticket(webdesk.desk, due=None if i % 6 == 5 else base + timedelta(hours=i // 2))
    with webdesk.desk.factory() as s:
        expected = [t.number for t in sorted(
            s.scalars(select(Ticket)).all(),
            key=lambda t: (t.first_response_due is None, t.first_response_due or base, t.id),
        )]
        seen: list[list[str]] = []
        page = queue_page(s, QueueFilters(), user_id=None, limit=5)
        while True:
            seen.append([t.number for t in page.tickets])
            if page.next is None:
                break
            page = queue_page(s, QueueFilters(), user_id=None, after=page.next, limit=5)
        assert [n for chunk in seen for n in chunk] == expected
        assert [len(c) for c in seen] == [5, 5, 5, 2]
        back: list[list[str]] = [[t.number for t in page.tickets]]
        while page.prev is not None:
            page = queue_page(s, QueueFilters(), user_id=None, before=page.prev, limit=5)
            back.append([t.number for t in page.tickets])
        assert back[::-1] == seen


def test_cursors_survive_the_url_and_reject_nonsense() -> None:
    moment = datetime(2026, 11, 24, 8, 30, 15, 123456, tzinfo=UTC)
    for cursor in (Cursor(moment, 42), Cursor(None, 7)):
        assert Cursor.decode(cursor.encode()) == cursor
    for junk in ("", "x.1", "1.2.3", "99999999999999999999.1", None):
        assert Cursor.decode(junk) is None


def test_the_queue_page_links_to_the_next_and_previous_pages(
    webdesk: WebDesk, agent: Staff
) -> None:
    base = datetime.now(UTC)
    numbers = [make_ticket(webdesk.desk, due=base + timedelta(minutes=90 + i))
               for i in range(webdesk.web.page_size + 3)]
    first = agent.get("/queue?channel=email").text
    assert _numbers(first) == numbers[: webdesk.web.page_size]
    next_url = re.search(r'href="([^"]+)" rel="next"', first)
    assert next_url and "channel=email" in next_url.group(1)
    second = agent.get(next_url.group(1).replace("&amp;", "&")).text
    assert _numbers(second) == numbers[webdesk.web.page_size:]
    prev_url = re.search(r'href="([^"]+)" rel="prev"', second)
    assert prev_url
    assert _numbers(agent.get(prev_url.group(1).replace("&amp;", "&")).text) == \
        numbers[: webdesk.web.page_size]
    assert ticket(webdesk.desk, numbers[0]).status == TicketStatus.OPEN
