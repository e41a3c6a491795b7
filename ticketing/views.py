"""Read-only views of the desk for people and programs: queue, thread, export."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.interfaces import ORMOption

from madoguchi.config import SupportNumberSettings
from madoguchi.ticketing import lookup
from madoguchi.ticketing.delivery import delivery_states
from madoguchi.ticketing.history import Entry, events_of, export_history
from madoguchi.ticketing.models import Direction, Message, QuarantineEntry, Ticket, TicketStatus
from madoguchi.ticketing.support_number import format_number


def iso(moment: datetime | None, tz: ZoneInfo) -> str | None:
    return moment.astimezone(tz).isoformat() if moment else None


# A ticket with everything its thread shows.
_THREAD: tuple[ORMOption, ...] = (
    selectinload(Ticket.flags),
    selectinload(Ticket.customer),
    selectinload(Ticket.contract),
    selectinload(Ticket.contact),
    selectinload(Ticket.linked_ticket),
    selectinload(Ticket.messages).selectinload(Message.attachments),
)


def _ticket_query() -> Select[Ticket]:
    return select(Ticket).options(*_THREAD)


def display_number(ticket: Ticket, cfg: SupportNumberSettings) -> str | None:
    """The ticket's support number (its contract's), grouped for reading."""
    return format_number(ticket.support_number, cfg) if ticket.support_number else None


def display_written(ticket: Ticket, cfg: SupportNumberSettings) -> str | None:
    """The support number as the customer wrote it (check digit or not), grouped."""
    written = ticket.support_number_written
    return format_number(written, cfg) if written else None


def ticket_record(ticket: Ticket, tz: ZoneInfo, cfg: SupportNumberSettings,
                  history: list[Entry] | None = None,
                  deliveries: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One ticket as ``madoguchi export`` writes it (``history``: ``history.events_of``'s).

    ``deliveries``: the delivery state of the desk's mail by Message-ID (without <>);
    a message the outbox did not send (inbound, notes, FAX, phone) has ``delivery`` null.
    """
    deliveries = deliveries or {}
    return {
        "number": ticket.number,
        "status": ticket.status.value,
        "channel": ticket.channel.value,
        "subject": ticket.subject,
        "support_number": display_number(ticket, cfg),
        "support_number_written": display_written(ticket, cfg),
        "customer": ticket.customer.company if ticket.customer else None,
        "flags": ticket.flag_names,
        "product": ticket.product,
        "inquiry_kind": ticket.inquiry_kind.value if ticket.inquiry_kind else None,
        "received_at": iso(ticket.received_at, tz),
        "first_response_due": iso(ticket.first_response_due, tz),
        "linked_ticket": ticket.linked_ticket.number if ticket.linked_ticket else None,
        # The conversation (ticketing.conversation) and its history (ticketing.history).
        "state": ticket.state.value,
        "next_response_due": iso(ticket.next_response_due, tz),
        "history": export_history(history or [], tz),
        "messages": [
            {
                "message_id": m.message_id,
                "direction": m.direction.value,
                "channel": m.channel.value,
                "from": m.sender,
                "subject": m.subject,
                "text": m.text,
                "received_at": iso(m.received_at, tz),
                "auto": m.auto_kind,
                "delivery": deliveries.get(m.message_id or "")
                if m.direction is Direction.OUT else None,
                "attachments": [
                    {
                        "filename": a.filename,
                        "content_type": a.content_type,
                        "size": a.size,
                        "sha256": a.sha256,
                    }
                    for a in m.attachments
                ],
            }
            for m in ticket.messages
        ],
    }


def export_records(
    session: Session, tz: ZoneInfo, cfg: SupportNumberSettings, batch: int = 500
) -> Iterator[dict[str, Any]]:
    """Every ticket in number order, a batch at a time (memory stays flat)."""
    last_id = 0
    while True:
        tickets = session.scalars(
            _ticket_query().where(Ticket.id > last_id).order_by(Ticket.id).limit(batch)
        ).all()
        if not tickets:
            return
        histories = events_of(session, [t.id for t in tickets])
        deliveries = delivery_states(session, [t.id for t in tickets])
        for t in tickets:
            yield ticket_record(t, tz, cfg, histories[t.id], deliveries)
        last_id = tickets[-1].id
        session.expunge_all()


def queue(session: Session, *, include_closed: bool = False, limit: int = 200) -> list[Ticket]:
    """Tickets as staff work them: the soonest deadline still open first (the first
    response, or the next one after a customer's reply), then the oldest."""
    query = _ticket_query().order_by(
        Ticket.response_due.is_(None), Ticket.response_due, Ticket.received_at
    )
    if not include_closed:
        query = query.where(Ticket.status != TicketStatus.CLOSED)
    return list(session.scalars(query.limit(limit)))


def ticket_by_number(session: Session, number: str, *,
                     follow_merges: bool = False) -> Ticket | None:
    """The ticket numbered ``number`` with its thread loaded (``lookup.ticket_by_number``)."""
    return lookup.ticket_by_number(session, number, follow_merges=follow_merges,
                                   options=_THREAD)


def quarantine_records(session: Session, tz: ZoneInfo) -> Iterator[dict[str, Any]]:
    for q in session.scalars(select(QuarantineEntry).order_by(QuarantineEntry.id)):
        yield {
            "id": q.id,
            "source": q.source,
            "source_ref": q.source_ref,
            "reason_code": q.reason_code,
            "reason": q.reason,
            "sha256": q.sha256,
            "size": q.size,
            "received_at": iso(q.received_at, tz),
        }
