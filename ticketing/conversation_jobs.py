"""The conversation's due times, acted on by the daemon's sweep (``madoguchi.conversation_job``).

* a customer's reply waiting for the desk: a reminder to the assignee (else the
  team) ``daemon.reminder_lead_minutes`` of business time before its
  next-response due, and an escalation to the supervisor at it;
* a pending ticket's reminder date: the assignee (else the team) is reminded and
  the ticket comes back to the desk (open);
* a solved ticket silent for its product's ``auto_close_business_days``: closed.

Every act is one ticket in one transaction of its own, fenced by the caller
(the leader's epoch), and happens at most once whatever crashes in between:
the mail's outbox row has a dedupe key naming the ticket and the due time
(``remind-next:T-…:<due>``, ``pending:T-…:<date>``), the escalation's
history line a ``once_key``, and the state itself is checked again inside the
transaction (a pending ticket whose date passed is open once acted on; a
closed ticket is not closed again). A run repeated after ``kill -9`` finds
the work done and does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from madoguchi.config import Settings
from madoguchi.ticketing import conversation
from madoguchi.ticketing.calendar import BusinessCalendar
from madoguchi.ticketing.conversation_models import TicketEvent
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.deadlines import Deadlines
from madoguchi.ticketing.escalation import notice_mail
from madoguchi.ticketing.history import DESK, record
from madoguchi.ticketing.history_line import say
from madoguchi.ticketing.japanese import format_moment_ja
from madoguchi.ticketing.lookup import ticket_by_number
from madoguchi.ticketing.models import OutboxMessage, Ticket
from madoguchi.ticketing.outbox import enqueue
from madoguchi.ticketing.rules.conversation import Event, State

log = logging.getLogger("madoguchi.ticketing.conversation_jobs")

Fence = Callable[[Session], None]


@dataclass
class SweepReport:
    next_reminders: int = 0
    next_escalations: int = 0
    pending_reminders: int = 0
    auto_closed: int = 0

    def __str__(self) -> str:
        return (f"next-response reminders {self.next_reminders}, escalations "
                f"{self.next_escalations}, pending reminders {self.pending_reminders}, "
                f"auto-closed {self.auto_closed}")


def _stamp(moment: datetime) -> str:
    return f"{moment.timestamp():.0f}"


def next_reminder_at(replied_at: datetime, due: datetime, calendar: BusinessCalendar,
                     lead: timedelta) -> datetime:
    """``lead`` of business time before the due time (at the start of work if less is left)."""
    start = calendar.next_opening(replied_at)
    remaining = calendar.business_time_between(start, due)
    if remaining <= lead:
        return start
    return calendar.add_business_time(start, remaining - lead)


def _recipient(ticket: Ticket, settings: Settings) -> str:
    assignee = ticket.assignee
    return assignee.email if assignee is not None and assignee.email else (
        settings.daemon.team_address)


def _describe(ticket: Ticket, settings: Settings, label: str, moment: datetime | None) -> str:
    return (f"問合せ番号: {ticket.number}\n件名: {ticket.subject}\n"
            f"お客様: {ticket.customer.company if ticket.customer else '(未登録)'}\n"
            f"{label}: {format_moment_ja(moment, settings.tz) if moment else '-'}\n")


def remind_next(session: Session, ticket: Ticket, settings: Settings, now: datetime) -> bool:
    """Queue the reminder of a next response soon due; False when not needed or queued."""
    due = ticket.next_response_due
    to = _recipient(ticket, settings)
    if ticket.state is not State.CUSTOMER_REPLIED or due is None or not to or due <= now:
        return False
    body = ("お客様からの返信への回答期限が近づいています。\n\n"
            + _describe(ticket, settings, "次回回答期限", due))
    msg = notice_mail(settings, to, f"[{ticket.number}] 次回回答期限のお知らせ", body)
    return enqueue(session, kind="reminder", dedupe_key=f"remind-next:{ticket.number}:"
                   f"{_stamp(due)}", ticket=ticket, message=msg, now=now) is not None


def escalate_next(session: Session, ticket: Ticket, settings: Settings, now: datetime) -> bool:
    """The next response is overdue: recorded once, and the supervisor told; False if done."""
    due = ticket.next_response_due
    if ticket.state is not State.CUSTOMER_REPLIED or due is None or due > now:
        return False
    key = f"escalate-next:{ticket.number}:{_stamp(due)}"
    if not record(session, ticket.id, DESK, say("エスカレーション: 次回回答期限を過ぎました"),
                  at=now, kind="escalation", once_key=key):
        return False
    log.warning("%s: next response overdue, escalated", ticket.number)
    to = settings.daemon.supervisor_address
    if to:
        body = ("お客様からの返信への回答期限を過ぎました。至急ご確認ください。\n\n"
                + _describe(ticket, settings, "次回回答期限", due))
        subject = f"[{ticket.number}] 【エスカレーション】次回回答期限超過"
        enqueue(session, kind="escalation", dedupe_key=key, ticket=ticket, now=now,
                message=notice_mail(settings, to, subject, body))
    return True


def pending_due(session: Session, ticket: Ticket, settings: Settings, now: datetime) -> bool:
    """A pending ticket's date came: the reminder, and back to the desk; False if done."""
    until = ticket.pending_until
    if ticket.state is not State.PENDING or until is None or until > now:
        return False
    to = _recipient(ticket, settings)
    if to:
        body = ("保留にしていたチケットの再通知日時になりました。\n\n"
                + _describe(ticket, settings, "再通知日時", until))
        enqueue(session, kind="reminder", dedupe_key=f"pending:{ticket.number}:{_stamp(until)}",
                ticket=ticket, now=now,
                message=notice_mail(settings, to, f"[{ticket.number}] 保留の再通知", body))
    return conversation.move(session, ticket, Event.PENDING_DUE, DESK, now, tz=settings.tz,
                             why=say("保留の再通知日時（%(at)s）", at=until))


def auto_close(session: Session, ticket: Ticket, deadlines: Deadlines, now: datetime) -> bool:
    """Close a solved ticket whose silence lasted its product's business days."""
    if ticket.state is not State.SOLVED or ticket.solved_at is None:
        return False
    at = deadlines.auto_close_at(ticket.solved_at, contract=ticket.contract,
                                 product=ticket.product)
    if at is None or at > now:
        return False
    return conversation.move(session, ticket, Event.SILENCE, DESK, now, deadlines=deadlines,
                             why=say("解決後、お客様からのご連絡がないため自動クローズ"))


def _done(session: Session, keys: list[str]) -> set[str]:
    """Which of these acts were done already (a history once_key, an outbox dedupe key)."""
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        found.update(session.scalars(select(TicketEvent.once_key)
                                     .where(TicketEvent.once_key.in_(chunk))))
        found.update(session.scalars(select(OutboxMessage.dedupe_key)
                                     .where(OutboxMessage.dedupe_key.in_(chunk))))
    return found


@dataclass
class ConversationJobs:
    """What the daemon's sweep runs: each due act in a fenced transaction of its own."""

    factory: sessionmaker[Session]
    settings: Settings
    deadlines: Deadlines
    fence: Fence

    def _act(self, number: str, act: Callable[[Session, Ticket], bool]) -> bool:
        with transaction(self.factory) as session:
            self.fence(session)
            ticket = ticket_by_number(session, number, follow_merges=False)
            return ticket is not None and act(session, ticket)

    def sweep(self, now: datetime) -> SweepReport:
        report = SweepReport()
        s, lead = self.settings, timedelta(minutes=self.settings.daemon.reminder_lead_minutes)
        with self.factory() as session:
            found = session.execute(
                select(Ticket.number, Ticket.customer_replied_at, Ticket.next_response_due,
                       Ticket.product)
                .where(Ticket.state == State.CUSTOMER_REPLIED,
                       Ticket.next_response_due.is_not(None))).all()
            replied = [(number, replied_at or due, due, product)
                       for number, replied_at, due, product in found if due is not None]
            pending = session.scalars(select(Ticket.number).where(
                Ticket.state == State.PENDING, Ticket.pending_until <= now)).all()
            shortest = min((p.auto_close_days for p in (*self.deadlines.products.all,
                                                        self.deadlines.products.default)
                            if p.auto_close_days > 0), default=0)
            solved = session.scalars(select(Ticket.number).where(
                Ticket.state == State.SOLVED,
                Ticket.solved_at <= now - timedelta(days=shortest))).all() if shortest else []
            done = _done(session, [f"{kind}:{number}:{_stamp(due)}" for number, _, due, _ in replied
                                   for kind in ("escalate-next", "remind-next")])
        for number, replied_at, due, product in replied:
            calendar = self.deadlines.product_for(product=product).calendar
            if due <= now:
                if f"escalate-next:{number}:{_stamp(due)}" not in done:
                    report.next_escalations += self._act(
                        number, lambda db, t: escalate_next(db, t, s, now))
            elif (f"remind-next:{number}:{_stamp(due)}" not in done
                  and next_reminder_at(replied_at, due, calendar, lead) <= now):
                report.next_reminders += self._act(
                    number, lambda db, t: remind_next(db, t, s, now))
        for number in pending:
            report.pending_reminders += self._act(
                number, lambda db, t: pending_due(db, t, s, now))
        for number in solved:
            report.auto_closed += self._act(
                number, lambda db, t: auto_close(db, t, self.deadlines, now))
        return report
