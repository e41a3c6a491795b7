"""The history of a ticket (``ticketing.history`` writes it), and the conversation's
derived column: the deadline still open, kept by a mapper event on every ORM write.

Registered on ``models.Base`` (``ticketing.models`` imports this module at
its end), so the migrations and ``Base.metadata`` know it, and the event is
in place wherever tickets are written.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column

from madoguchi.ticketing.models import Base, Ticket, UTCDateTime
from madoguchi.ticketing.rules.conversation import open_deadline
from madoguchi.ticketing.vocabulary import ConversationState, TicketStatus

# A ticket written with a status alone (older code, fixtures) starts in its state.
_FROM_STATUS = {TicketStatus.OPEN: ConversationState.NEW,
                TicketStatus.PENDING: ConversationState.PENDING,
                TicketStatus.CLOSED: ConversationState.CLOSED}


class TicketEvent(Base):
    """One change to a ticket, in the desk's words, with who did it and when."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket_at", "ticket_id", "at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The staff user who acted; None for the desk itself or the command line.
    by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), default=None)
    by: Mapped[str] = mapped_column(String(200))  # the name shown: the user's, or the desk's
    # A short code ("state", "assignee", "flag", "contract", "merge", "triage",
    # "contact", "delivery", "reminder"...), and the line staff read.
    kind: Mapped[str] = mapped_column(String(40))
    what: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, object] | None] = mapped_column(JSON, default=None)
    # Set by a job that must act once (a reminder, an escalation): a second
    # record with the same key is skipped, so a run repeated after a crash is not.
    once_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)


def _keep_due(ticket: Ticket) -> None:
    if ticket.state is None:
        ticket.state = _FROM_STATUS.get(ticket.status, ConversationState.NEW)
    ticket.response_due = open_deadline(
        ticket.state, first_response_due=ticket.first_response_due,
        first_responded=ticket.first_responded_at is not None,
        next_response_due=ticket.next_response_due)


@event.listens_for(Ticket, "before_insert")
def _before_insert(_mapper: object, _connection: object, target: Ticket) -> None:
    _keep_due(target)


@event.listens_for(Ticket, "before_update")
def _before_update(_mapper: object, _connection: object, target: Ticket) -> None:
    _keep_due(target)
