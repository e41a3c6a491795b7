"""The search's filters: what the web page's form and ``madoguchi search``'s flags narrow by.

Both hand the same strings to ``parse_filters`` (a bad value gives a
problem in the catalogue's words, never an exception), and ``ticketing.search`` turns
the result into conditions on the ticket.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from madoguchi.ticketing.history_line import Line, say
from madoguchi.ticketing.models import Contract, StaffUser, Ticket
from madoguchi.ticketing.rules.marks import N_
from madoguchi.ticketing.rules.search_text import fold
from madoguchi.ticketing.vocabulary import Channel, TicketStatus

# A note is a message, never a ticket: a ticket comes by mail, FAX or phone.
TICKET_CHANNELS = tuple(c for c in Channel if c != Channel.NOTE)
UNASSIGNED = "none"
FILTER_NAMES = ("status", "channel", "product", "from", "to", "assignee")
_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")


@dataclass(frozen=True)
class SearchFilters:
    status: TicketStatus | None = None
    channel: Channel | None = None
    product: str | None = None
    received_from: datetime | None = None  # inclusive
    received_before: datetime | None = None  # exclusive: the day after "to"
    assignee: str | None = None  # a staff login, or UNASSIGNED

    def active(self) -> bool:
        return any(v is not None for v in (self.status, self.channel, self.product,
                                          self.received_from, self.received_before,
                                          self.assignee))

    def conditions(self) -> list[ColumnElement[bool]]:
        """Conditions on ``Ticket`` (the query joins it)."""
        where: list[ColumnElement[bool]] = []
        if self.status is not None:
            where.append(Ticket.status == self.status)
        if self.channel is not None:
            where.append(Ticket.channel == self.channel)
        if self.product is not None:
            # A ticket's own product, else its contract's.
            where.append(or_(Ticket.product == self.product, and_(
                Ticket.product.is_(None),
                Ticket.contract_id.in_(select(Contract.id).where(
                    Contract.product == self.product)))))
        if self.received_from is not None:
            where.append(Ticket.received_at >= self.received_from)
        if self.received_before is not None:
            where.append(Ticket.received_at < self.received_before)
        if self.assignee == UNASSIGNED:
            where.append(Ticket.assignee_id.is_(None))
        elif self.assignee is not None:
            where.append(Ticket.assignee_id == select(StaffUser.id).where(
                StaffUser.login == self.assignee).scalar_subquery())
        return where


def _day(value: str) -> date | None:
    m = _DATE.fullmatch(fold(value).strip().replace("/", "-"))
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def parse_filters(values: Mapping[str, str], tz: ZoneInfo) -> tuple[SearchFilters, Line | None]:
    """Filters from the form's or the CLI's strings (empty = not filtered), or a problem."""
    v = {name: (values.get(name) or "").strip() for name in FILTER_NAMES}
    status = channel = None
    if v["status"]:
        try:
            status = TicketStatus(v["status"])
        except ValueError:
            return SearchFilters(), say("状態「%(value)s」はありません", value=v["status"])
    if v["channel"]:
        try:
            channel = Channel(v["channel"])
        except ValueError:
            channel = None
        if channel not in TICKET_CHANNELS:
            return SearchFilters(), say("受付経路「%(value)s」はありません", value=v["channel"])
    bounds: list[datetime | None] = []
    for name, label, shift in (("from", N_("受付日（から）"), 0), ("to", N_("受付日（まで）"), 1)):
        if not v[name]:
            bounds.append(None)
            continue
        day = _day(v[name])
        if day is None:
            return SearchFilters(), say("%(label)sは 2026-11-24 のように書いてください",
                                        label=label)
        bounds.append(datetime.combine(day + timedelta(days=shift), time(), tz))
    if bounds[0] and bounds[1] and bounds[0] >= bounds[1]:
        return SearchFilters(), say("受付日の「から」が「まで」より後になっています")
    return SearchFilters(status=status, channel=channel, product=v["product"][:200] or None,
                         received_from=bounds[0], received_before=bounds[1],
                         assignee=v["assignee"][:100] or None), None


@dataclass(frozen=True)
class FilterChoices:
    """What the search page's selects offer."""

    statuses: tuple[str, ...]
    channels: tuple[str, ...]
    products: list[str]
    staff: list[tuple[str, str]]  # (login, name)


def choices(session: Session) -> FilterChoices:
    products = session.scalars(select(Contract.product).distinct().where(Contract.product != "")
                               .order_by(Contract.product).limit(200))
    staff = session.execute(select(StaffUser.login, StaffUser.name)
                            .where(StaffUser.active.is_(True)).order_by(StaffUser.name))
    return FilterChoices(tuple(s.value for s in TicketStatus),
                         tuple(c.value for c in TICKET_CHANNELS),
                         list(products), [(login, name) for login, name in staff])
