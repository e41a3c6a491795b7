"""Keeping the first-response promise: the reminder before the due time, the escalation at it.

The times are pure functions of the ticket and the calendar; the actions
write an outbox mail (at most once per ticket, by its dedupe key) and, for
the escalation, mark the ticket. A ticket answered or closed in the
meantime makes both a no-op: that is how answering cancels them.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

from sqlalchemy import select
from sqlalchemy.orm import Session

from madoguchi.config import Settings
from madoguchi.ticketing.acknowledgement import format_moment_ja
from madoguchi.ticketing.calendar import BusinessCalendar
from madoguchi.ticketing.models import Ticket, TicketStatus
from madoguchi.ticketing.outbox import enqueue

log = logging.getLogger("madoguchi.ticketing.escalation")


def awaiting_first_response(ticket: Ticket) -> bool:
    return (
        ticket.first_response_due is not None
        and ticket.first_responded_at is None
        and ticket.status != TicketStatus.CLOSED
    )


def reminder_at(ticket: Ticket, calendar: BusinessCalendar, lead: timedelta) -> datetime | None:
    """``lead`` of business time before the due time (at the start of work if less is left)."""
    if ticket.first_response_due is None:
        return None
    start = ticket.work_starts_at or calendar.next_opening(ticket.received_at)
    remaining = calendar.business_time_between(start, ticket.first_response_due)
    if remaining <= lead:
        return start
    return calendar.add_business_time(start, remaining - lead)


def notice_mail(settings: Settings, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = formataddr(("Madoguchi", settings.desk_address))
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=settings.desk_address.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(body, charset="utf-8")
    return msg


def _describe(ticket: Ticket, settings: Settings) -> str:
    due = ticket.first_response_due
    return (
        f"問合せ番号: {ticket.number}\n"
        f"件名: {ticket.subject}\n"
        f"お客様: {ticket.customer.company if ticket.customer else '(未登録)'}\n"
        f"受付: {format_moment_ja(ticket.received_at, settings.tz)}\n"
        f"一次対応期限: {format_moment_ja(due, settings.tz) if due else '-'}\n"
    )


def remind(session: Session, ticket: Ticket, settings: Settings, now: datetime) -> bool:
    """Queue the reminder to the assignee (else the team); False when not needed or sent."""
    assignee = ticket.assignee
    to = assignee.email if assignee is not None and assignee.email else settings.daemon.team_address
    if not to or not awaiting_first_response(ticket):
        return False
    body = "一次対応の期限が近づいています。\n\n" + _describe(ticket, settings)
    msg = notice_mail(settings, to, f"[{ticket.number}] 一次対応期限のお知らせ", body)
    return enqueue(session, kind="reminder", dedupe_key=f"remind:{ticket.number}",
                   ticket=ticket, message=msg, now=now) is not None


def escalate(session: Session, ticket: Ticket, settings: Settings, now: datetime) -> bool:
    """Mark the ticket escalated and tell the supervisor; False when not needed."""
    if not awaiting_first_response(ticket) or ticket.escalated_at is not None:
        return False
    ticket.escalated_at = now
    log.warning("%s: first response overdue, escalated", ticket.number)
    to = settings.daemon.supervisor_address
    if to:
        body = "一次対応の期限を過ぎました。至急ご確認ください。\n\n" + _describe(ticket, settings)
        msg = notice_mail(settings, to, f"[{ticket.number}] 【エスカレーション】一次対応期限超過",
                          body)
        enqueue(session, kind="escalation", dedupe_key=f"escalate:{ticket.number}",
                ticket=ticket, message=msg, now=now)
    return True


def tickets_awaiting(session: Session, limit: int = 10_000) -> list[Ticket]:
    """Open tickets still waiting for their first response, soonest due first."""
    return list(
        session.scalars(
            select(Ticket)
            .where(
                Ticket.first_responded_at.is_(None),
                Ticket.first_response_due.is_not(None),
                Ticket.escalated_at.is_(None),
                Ticket.status != TicketStatus.CLOSED,
            )
            .order_by(Ticket.first_response_due)
            .limit(limit)
        )
    )
