"""A ticket's conversation kept up to date: the rule's move applied, its clocks, its history.

``rules.conversation.next_state`` decides; ``move`` applies the decision to a
``Ticket`` in the caller's transaction: the state and its coarse status, the
close time, the next-response due (``Deadlines.next_response``) when the
customer's reply starts that clock, the pending reminder date, the deadline
still open that the queue sorts by (``response_due``), and one history line
(``ticketing.history``). Every desk action, the intake and the daemon's jobs
change the state through here.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from madoguchi.ticketing.deadlines import ContractTerms, Deadlines
from madoguchi.ticketing.history import record
from madoguchi.ticketing.history_line import Line, say
from madoguchi.ticketing.models import Contract, StaffUser, Ticket
from madoguchi.ticketing.rules.conversation import Event, State, next_state, open_deadline
from madoguchi.ticketing.rules.marks import N_

__all__ = ["STATE_LABELS", "move", "refresh_due"]

_JAPAN = ZoneInfo("Asia/Tokyo")
STATE_LABELS = {
    State.NEW: N_("新規"),
    State.OPEN: N_("対応中"),
    State.WAITING: N_("回答済・返信待ち"),
    State.PENDING: N_("保留"),
    State.CUSTOMER_REPLIED: N_("お客様から返信あり"),
    State.SOLVED: N_("解決済"),
    State.CLOSED: N_("完了"),
}


def refresh_due(ticket: Ticket) -> None:
    """The deadline the queue sorts by: the first response while owed, else the next one."""
    ticket.response_due = open_deadline(
        ticket.state or State.NEW, first_response_due=ticket.first_response_due,
        first_responded=ticket.first_responded_at is not None,
        next_response_due=ticket.next_response_due,
    )


def _contract(session: Session, ticket: Ticket) -> ContractTerms | None:
    if ticket.contract_id is None:
        return None
    return session.get(Contract, ticket.contract_id)


def _line(old: State, new: State, ticket: Ticket, why: Line | str) -> Line:
    line = say("状態: %(old)s → %(new)s", old=STATE_LABELS[old], new=STATE_LABELS[new])
    if new is State.PENDING and ticket.pending_until is not None:
        line += say("（再通知 %(at)s）", at=ticket.pending_until)
    if new is State.CUSTOMER_REPLIED and ticket.next_response_due is not None:
        line += say("（次回回答期限 %(at)s）", at=ticket.next_response_due)
    return line + say("。") + why if why else line


def move(session: Session, ticket: Ticket, event: Event, by: StaffUser | str | None,
         now: datetime, *, deadlines: Deadlines | None = None, chosen: State | None = None,
         pending_until: datetime | None = None, why: Line | str = "",
         tz: ZoneInfo | None = None) -> bool:
    """Apply ``event`` to the ticket; True when its state (or reminder date) changed.

    ``deadlines`` is needed when the customer writes (the next-response clock);
    ``pending_until`` when staff choose pending with a reminder date. Times in the
    history line are in ``tz`` (default: the deadlines' calendar's, else Japan's).
    """
    old = ticket.state or State.NEW
    step = next_state(old, event, first_responded=ticket.first_responded_at is not None,
                      chosen=chosen)
    new = step.state
    if step.starts_next_response:
        if deadlines is None:
            raise ValueError("the next-response due needs the desk's deadlines")
        due = deadlines.next_response(now, _contract(session, ticket), product=ticket.product)
        ticket.next_response_due, ticket.customer_replied_at = due.due_at, now
    elif new is not State.CUSTOMER_REPLIED:
        ticket.next_response_due = ticket.customer_replied_at = None
    old_until = ticket.pending_until
    ticket.pending_until = pending_until if new is State.PENDING else None
    if new is not State.SOLVED:
        ticket.solved_at = None
    elif old is not State.SOLVED:
        ticket.solved_at = now
    if new is State.CLOSED:
        ticket.closed_at = ticket.closed_at if old is State.CLOSED else now
    else:
        ticket.closed_at = None
    ticket.state, ticket.status = new, step.status
    refresh_due(ticket)
    changed = new is not old or ticket.pending_until != old_until
    if changed and ticket.id is not None:
        zone = tz or (deadlines.calendar.tz if deadlines is not None else _JAPAN)
        record(session, ticket.id, by, _line(old, new, ticket, why), at=now, kind="state",
               detail={"from": old.value, "to": new.value, "event": event.value}, tz=zone)
    return changed
