"""Triage: FAX tickets whose support number could not be read wait for staff.

Nothing is guessed by the reader; staff look at the page images and assign
the number, which must pass its check digit. The ticket then gets the
contract, its entitlement flags and its first-response due time as if the
number had been read.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from madoguchi.config import Settings
from madoguchi.ticketing import store
from madoguchi.ticketing.calendar import BusinessCalendar
from madoguchi.ticketing.models import Contract, Flag, Message, Ticket, TicketFlag
from madoguchi.ticketing.sla import FirstResponsePolicy, contract_policy, first_response_due
from madoguchi.ticketing.support_number import parse_support_number


class TriageError(Exception):
    pass


def triage_queue(session: Session) -> list[tuple[Ticket, list[str]]]:
    """Tickets flagged ``unreadable_fax``, oldest first, with their page images (sha256)."""
    tickets = session.scalars(
        select(Ticket)
        .join(TicketFlag)
        .where(TicketFlag.flag == Flag.UNREADABLE_FAX)
        .options(selectinload(Ticket.messages).selectinload(Message.attachments))
        .order_by(Ticket.received_at)
    ).all()
    return [
        (
            t,
            [a.sha256 for m in t.messages for a in m.attachments if a.content_type == "image/png"],
        )
        for t in tickets
    ]


def assign_support_number(
    session: Session, number: str, support_number: str, settings: Settings
) -> Ticket:
    ticket = store.ticket_by_number(session, number)
    if ticket is None:
        raise TriageError(f"no ticket {number}")
    parsed = parse_support_number(support_number, settings.support_number)
    if parsed is None:
        raise TriageError(f"{support_number!r} is not a valid support service number")
    contract = store.contract_for_number(session, parsed.digits)
    ticket.support_number = parsed.digits
    keep = {Flag.UNREGISTERED_SENDER}
    ticket.flags = [f for f in ticket.flags if f.flag in keep]
    flags = set()
    if contract is None:
        flags.add(Flag.UNKNOWN_SUPPORT_NUMBER)
        ticket.contract_id = None
    else:
        ticket.contract_id, ticket.customer_id = contract.id, contract.customer_id
        day = ticket.received_at.astimezone(settings.tz).date()
        if not contract.in_force_on(day):
            flags.add(Flag.CONTRACT_EXPIRED)
        row = session.get_one(Contract, contract.id)
        policy = contract_policy(FirstResponsePolicy.from_settings(settings.sla),
                                 row.sla_override, contract=row.support_number)
        calendar = BusinessCalendar.from_settings(settings.calendar, settings.tz)
        deadline = first_response_due(ticket.received_at, calendar, policy)
        ticket.work_starts_at, ticket.first_response_due = deadline.starts_at, deadline.due_at
    session.flush()
    store.set_flags(ticket, flags)
    return ticket

