"""What the web desk reads: the queue, a ticket, search, customers (triage: ticketing.triage).

The queue pages by keyset — (response_due, id) after or before a cursor —
never by OFFSET, so page 2,000 costs what page 1 costs. ``response_due`` is
the deadline still open (the first response while owed, else the next one
after a customer's reply; ``rules.conversation.open_deadline``). Tickets with
none come after all others, ordered by id. The "not closed" test is
``queues.ACTIVE``, written as the partial index
``ix_tickets_active_response_due`` of migration 0009 is, so that SQLite and
PostgreSQL both match the query to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    TextClause,
    and_,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.orm.interfaces import ORMOption

from madoguchi.ticketing import customer_lookup, ticket_number
from madoguchi.ticketing.dialect import dialect_of
from madoguchi.ticketing.ids import parse_id
from madoguchi.ticketing.lookup import ticket_by_number
from madoguchi.ticketing.models import (
    Channel,
    Contact,
    Contract,
    Customer,
    Flag,
    Message,
    StaffUser,
    Ticket,
    TicketFlag,
)
from madoguchi.ticketing.queues import ACTIVE, AWAITING, TRIAGE_FLAGS, WAITING_FOR_US
from madoguchi.ticketing.search import SearchHit as SearchHit
from madoguchi.ticketing.search import SearchResult as SearchResult
from madoguchi.ticketing.search import search as search
from madoguchi.ticketing.search import search_terms as search_terms

_STATUS_ONLY = {
    "open": WAITING_FOR_US,
    "pending": text("tickets.status = 'pending'"),
    "customer_replied": text("tickets.state = 'customer_replied'"),
}
STATUS_CHOICES = ("active", "open", "customer_replied", "pending", "closed", "all")


# -- the queue ---------------------------------------------------------------


@dataclass(frozen=True)
class QueueFilters:
    status: str = "active"
    channel: str = ""
    flag: str = ""
    assignee: str = ""  # "", "me", "none" or a staff id
    customer: str = ""  # part of a company name
    customer_id: int | None = None
    due: str = ""  # "today": not yet answered, due by the end of today (overdue included)

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> QueueFilters:
        """Filters from a query string; values that mean nothing are ignored."""
        status = params.get("status", "active")
        channel = params.get("channel", "")
        flag = params.get("flag", "")
        assignee = params.get("assignee", "")
        cid = params.get("customer_id", "")
        return cls(
            status=status if status in STATUS_CHOICES else "active",
            channel=channel if channel in {c.value for c in Channel} else "",
            flag=flag if flag in {f.value for f in Flag} else "",
            assignee=assignee if assignee in ("me", "none") or parse_id(assignee) else "",
            customer=params.get("customer", "").strip()[:200],
            customer_id=parse_id(cid),
            due="today" if params.get("due") == "today" else "",
        )

    def params(self) -> dict[str, str]:
        """The non-default filters, for links that keep them."""
        out = {
            "status": self.status if self.status != "active" else "",
            "channel": self.channel,
            "flag": self.flag,
            "assignee": self.assignee,
            "customer": self.customer,
            "customer_id": str(self.customer_id) if self.customer_id else "",
            "due": self.due,
        }
        return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class Cursor:
    """A position in the queue: a ticket's due time (None sorts last) and id."""

    due: datetime | None
    id: int

    @classmethod
    def of(cls, ticket: Ticket) -> Cursor:
        return cls(ticket.response_due, ticket.id)

    def encode(self) -> str:
        if self.due is None:
            return f"n.{self.id}"
        micros = round(self.due.timestamp() * 1_000_000)
        return f"{micros}.{self.id}"

    @classmethod
    def decode(cls, token: str | None) -> Cursor | None:
        match = re.fullmatch(r"(n|-?\d{1,20})\.(\d{1,18})", token or "")
        if not match:
            return None
        due = None
        if match.group(1) != "n":
            try:
                due = datetime.fromtimestamp(int(match.group(1)) / 1_000_000, UTC)
            except (OverflowError, ValueError, OSError):
                return None
        return cls(due, int(match.group(2)))


@dataclass
class QueuePage:
    tickets: list[Ticket]
    next: Cursor | None = None
    prev: Cursor | None = None


Condition = ColumnElement[bool] | TextClause


def _conditions(f: QueueFilters, user_id: int | None,
                day_end: datetime | None = None) -> list[Condition]:
    """What a ticket must be to stand in the queue under ``f`` (its list and its count)."""
    where: list[Condition] = []
    if f.due == "today" and day_end is not None:
        where += [AWAITING, Ticket.first_response_due < _due_param(day_end)]
    if f.status == "closed":
        where.append(text("tickets.status = 'closed'"))
    elif f.status != "all":
        where.append(ACTIVE)
        if f.status in _STATUS_ONLY:
            where.append(_STATUS_ONLY[f.status])
    if f.channel:
        where.append(Ticket.channel == Channel(f.channel))
    if f.flag:
        flag = Flag(f.flag)
        if flag in TRIAGE_FLAGS:
            # Implied by the flag (migration 0016's counter), and what lets the planner go
            # through ix_tickets_active_views to the few open flagged tickets instead of
            # every open ticket (1 M tickets: 75 -> 19 ms).
            where.append(Ticket.triage_flags > 0)
        where.append(exists().where(TicketFlag.ticket_id == Ticket.id, TicketFlag.flag == flag))
    if f.assignee == "me":
        where.append(Ticket.assignee_id == user_id)
    elif f.assignee == "none":
        where.append(Ticket.assignee_id.is_(None))
    elif f.assignee:
        where.append(Ticket.assignee_id == int(f.assignee))
    if f.customer_id:
        where.append(Ticket.customer_id == f.customer_id)
    if f.customer:
        where.append(Ticket.customer_id.in_(
            select(Customer.id).where(Customer.company.contains(f.customer, autoescape=True))
        ))
    return where


def _filtered(query: Select[Any], f: QueueFilters, user_id: int | None,
              day_end: datetime | None = None) -> Select[Any]:
    return query.where(*_conditions(f, user_id, day_end))


def queue_page(
    session: Session,
    f: QueueFilters,
    *,
    user_id: int | None,
    after: Cursor | None = None,
    before: Cursor | None = None,
    limit: int = 50,
    day_end: datetime | None = None,
) -> QueuePage:
    """One page of the queue, the soonest deadline still open first."""
    # A page is a few dozen rows found through an index.
    dialect_of(session).prefer_index_scans(session)
    base = _filtered(
        select(Ticket).options(joinedload(Ticket.customer), joinedload(Ticket.assignee),
                               selectinload(Ticket.flags)),
        f, user_id, day_end,
    )
    due, tid = Ticket.response_due, Ticket.id
    rows: list[Ticket] = []
    if before is None:
        if after is None or after.due is not None:
            q = base.where(due.is_not(None))
            if after is not None:
                q = q.where(tuple_(due, tid) > tuple_(_due_param(after.due), after.id))
            rows = list(session.scalars(q.order_by(due, tid).limit(limit + 1)))
        if len(rows) <= limit:
            q = base.where(due.is_(None))
            if after is not None and after.due is None:
                q = q.where(tid > after.id)
            rows += session.scalars(q.order_by(tid).limit(limit + 1 - len(rows)))
        more = len(rows) > limit
        rows = rows[:limit]
        return QueuePage(
            rows,
            next=Cursor.of(rows[-1]) if more else None,
            prev=Cursor.of(rows[0]) if after is not None and rows else None,
        )
    if before.due is None:
        q = base.where(due.is_(None), tid < before.id)
        rows = list(session.scalars(q.order_by(tid.desc()).limit(limit + 1)))
    if len(rows) <= limit:
        q = base.where(due.is_not(None))
        if before.due is not None:
            q = q.where(tuple_(due, tid) < tuple_(_due_param(before.due), before.id))
        rows += session.scalars(q.order_by(due.desc(), tid.desc()).limit(limit + 1 - len(rows)))
    more = len(rows) > limit
    rows = rows[:limit][::-1]
    return QueuePage(
        rows,
        next=Cursor.of(rows[-1]) if rows else None,
        prev=Cursor.of(rows[0]) if more else None,
    )


def _due_param(value: datetime | None) -> Any:
    return literal(value, Ticket.__table__.c.response_due.type)


def queue_count(session: Session, f: QueueFilters, *, user_id: int | None,
                day_end: datetime | None = None) -> int:
    """How many tickets the queue holds under ``f`` (one count through an index)."""
    query = _filtered(select(func.count()).select_from(Ticket), f, user_id, day_end)
    return int(session.scalar(query) or 0)


def view_counts(session: Session, views: Sequence[QueueFilters], *, user_id: int | None,
                day_end: datetime | None = None,
                also: Sequence[Sequence[Condition]] = ()) -> list[int]:
    """``queue_count`` of each of ``views``, then of each condition list of ``also``: one
    statement, one pass over the tickets not closed (``ix_tickets_active_views`` of
    migration 0016 holds every column they test).

    Every view and condition list must keep to the tickets not closed.
    """
    wheres = [_conditions(f, user_id, day_end) for f in views] + [list(c) for c in also]
    if not all(any(c is ACTIVE for c in where) for where in wheres):
        raise ValueError("view_counts counts among the tickets not closed only")
    counts = [func.count().filter(and_(*[c for c in where if c is not ACTIVE]))
              if len(where) > 1 else func.count() for where in wheres]
    row = session.execute(select(*counts).select_from(Ticket).where(ACTIVE)).one()
    return [int(n or 0) for n in row]


# -- one ticket --------------------------------------------------------------


@dataclass
class TicketView:
    ticket: Ticket
    merged_into: Ticket | None
    merged_from: list[str]
    followups: list[str]
    authors: dict[int, StaffUser]


# What a ticket's page shows of it: the one-of relations and its flags joined to the
# ticket's own row, one statement; the contract's periods, the contact's addresses, the
# thread and its attachments one more each (joining the periods and addresses too made
# that statement's planning cost more, 5 ms at 1 M tickets, than the two it saved).
_PAGE: tuple[ORMOption, ...] = (
    joinedload(Ticket.customer),
    joinedload(Ticket.flags),
    joinedload(Ticket.contract).selectinload(Contract.periods),
    joinedload(Ticket.contact).selectinload(Contact.emails),
    joinedload(Ticket.assignee),
    joinedload(Ticket.linked_ticket),
    selectinload(Ticket.messages).selectinload(Message.attachments),
)


def ticket_view(session: Session, number: str) -> TicketView | None:
    """A ticket's own page: a merged ticket is shown itself, with its "merged into" link."""
    ticket = ticket_by_number(session, number, follow_merges=False, options=_PAGE)
    if ticket is None:
        return None
    merged_into = session.get(Ticket, ticket.merged_into_id) if ticket.merged_into_id else None
    # The tickets merged into this one and its follow-ups, in one statement.
    related = session.execute(
        select(Ticket.number, Ticket.merged_into_id, Ticket.linked_ticket_id)
        .where(or_(Ticket.merged_into_id == ticket.id, Ticket.linked_ticket_id == ticket.id))
        .order_by(Ticket.id)
    ).all()
    merged_from = [n for n, into, _ in related if into == ticket.id]
    followups = [n for n, _, linked in related if linked == ticket.id]
    author_ids = {m.author_id for m in ticket.messages if m.author_id}
    authors = {
        u.id: u for u in session.scalars(select(StaffUser).where(StaffUser.id.in_(author_ids)))
    } if author_ids else {}
    return TicketView(ticket, merged_into, merged_from, followups, authors)


def ticket_for_update(session: Session, number: str) -> Ticket | None:
    """The ticket a page acts on: itself, so that acting on a merged one is refused."""
    return ticket_by_number(session, number, follow_merges=False)


def active_staff(session: Session) -> list[StaffUser]:
    return list(session.scalars(
        select(StaffUser).where(StaffUser.active.is_(True)).order_by(StaffUser.name)
    ))


def contract_choices(session: Session, limit: int = 1000) -> list[tuple[str, str, str]]:
    """(support number digits, company, product) for the pickers, by company."""
    rows = session.execute(
        select(Contract.support_number, Customer.company, Contract.product)
        .join(Customer, Contract.customer_id == Customer.id)
        .order_by(Customer.company, Contract.support_number)
        .limit(limit)
    )
    return [(n, c, p) for n, c, p in rows]


# -- search ------------------------------------------------------------------


def ticket_number_in(query: str) -> str | None:
    return ticket_number.normalise(query)


# -- customers ---------------------------------------------------------------


def customers_page(session: Session, q: str, page: int,
                   size: int = 50) -> tuple[list[Customer], bool]:
    query = select(Customer).options(selectinload(Customer.contracts)
                                     .selectinload(Contract.periods))
    found = customer_lookup.customer_condition(q)
    if found is not None:
        query = query.where(found)
    rows = list(session.scalars(
        query.order_by(Customer.company, Customer.id).offset(page * size).limit(size + 1)
    ))
    return rows[:size], len(rows) > size


def customer_detail(session: Session, customer_id: int) -> Customer | None:
    return session.scalar(
        select(Customer)
        .where(Customer.id == customer_id)
        .options(
            selectinload(Customer.contracts).selectinload(Contract.contacts),
            selectinload(Customer.contracts).selectinload(Contract.periods),
            selectinload(Customer.contacts).selectinload(Contact.emails),
            selectinload(Customer.contacts).selectinload(Contact.contracts),
        )
    )


def customer_tickets(session: Session, customer_id: int, limit: int = 20) -> list[Ticket]:
    return list(session.scalars(
        select(Ticket).where(Ticket.customer_id == customer_id)
        .order_by(Ticket.received_at.desc(), Ticket.id.desc()).limit(limit)
    ))
