"""What staff do to several tickets at once: assign, set a status, close, merge.

Each ticket goes through the same single-ticket action (``actions``) in a
savepoint of its own, so every rule holds as it does for one ticket: a
merged ticket is refused, a status must be one of the desk's, a merge into
itself is refused. A ticket that is refused is left as it was and named in
the result with the reason; the others are done. The caller commits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from madoguchi.ticketing import actions
from madoguchi.ticketing.actions import ActionError
from madoguchi.ticketing.lookup import ticket_by_number
from madoguchi.ticketing.models import StaffUser, Ticket, TicketStatus
from madoguchi.ticketing.rules.marks import N_

# A page of the queue holds at most 500 tickets (web.page_size).
MAX_TICKETS = 500


@dataclass
class BulkResult:
    done: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (number, why)
    # The refusal itself by ticket number, for a caller that words it in another language.
    reasons: dict[str, ActionError] = field(default_factory=dict)


def _each(session: Session, numbers: Sequence[str], act: Callable[[Ticket], None]
          ) -> BulkResult:
    wanted = list(dict.fromkeys(n.strip() for n in numbers if n.strip()))
    if not wanted:
        raise ActionError(N_("チケットを選んでください"))
    if len(wanted) > MAX_TICKETS:
        raise ActionError(N_("一度に操作できるのは%(n)s件までです"), n=MAX_TICKETS)
    result = BulkResult()
    for number in wanted:
        ticket = ticket_by_number(session, number, follow_merges=False)
        if ticket is None:
            result.refused.append((number[:40], N_("チケットが見つかりません")))
            continue
        try:
            with session.begin_nested():
                act(ticket)
        except ActionError as exc:
            session.expire(ticket)
            result.refused.append((ticket.number, str(exc)))
            result.reasons[ticket.number] = exc
            continue
        result.done.append(ticket.number)
    return result


def assign(session: Session, numbers: Sequence[str], assignee: str) -> BulkResult:
    """Give the tickets to one staff member (``assignee``: their id; "" takes them off)."""
    actions.find_assignee(session, assignee)  # an unknown one is refused before any
    return _each(session, numbers, lambda t: _assign_one(session, t, assignee))


def _assign_one(session: Session, ticket: Ticket, assignee: str) -> None:
    actions.ensure_workable(ticket)
    actions.assign(session, ticket, assignee)


def set_status(session: Session, numbers: Sequence[str], status: str,
               now: datetime) -> BulkResult:
    if status not in {s.value for s in TicketStatus}:
        raise ActionError(N_("ステータスが正しくありません"))
    return _each(session, numbers, lambda t: actions.set_status(t, status, now))


def close(session: Session, numbers: Sequence[str], now: datetime) -> BulkResult:
    return set_status(session, numbers, TicketStatus.CLOSED.value, now)


def merge(session: Session, numbers: Sequence[str], target: str, user: StaffUser | None,
          now: datetime) -> BulkResult:
    """Merge each ticket into the one numbered ``target`` (which may be among them: skipped)."""
    if not target.strip():
        raise ActionError(N_("統合先のチケット番号を入力してください"))
    into = ticket_by_number(session, target.strip(), follow_merges=False)
    if into is None:
        raise ActionError(N_("統合先のチケット %(number)s が見つかりません"),
                          number=target.strip()[:40])
    others = [n for n in numbers if n.strip() != into.number]
    return _each(session, others, lambda t: _merge_one(session, t, target, user, now))


def _merge_one(session: Session, ticket: Ticket, target: str, user: StaffUser | None,
               now: datetime) -> None:
    actions.merge(session, ticket, target, user, now)
