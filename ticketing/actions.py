"""What staff do to a ticket: a note, its status, its assignee, a merge (calls: phone.py).

The web desk's forms and the command line call these same functions. Each
works in the caller's session and transaction and never commits. A request
that makes no sense (an unknown ticket number, a merge into itself) raises
``ActionError`` with the sentence staff read, in Japanese; nothing is
written then.

Who acted is a ``StaffUser`` (signed in to the web desk), or None for the
command line, which has no signed-in user: its notes are written in the
name ``COMMAND_LINE``, with no author.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.orm import Session, object_session

from madoguchi.ticketing import conversation
from madoguchi.ticketing.history import record
from madoguchi.ticketing.history_line import say
from madoguchi.ticketing.ids import parse_id
from madoguchi.ticketing.lookup import ticket_by_number
from madoguchi.ticketing.models import (
    Channel,
    Direction,
    Flag,
    Message,
    StaffUser,
    Ticket,
    TicketStatus,
)
from madoguchi.ticketing.rules.conversation import Event, State, chosen_state
from madoguchi.ticketing.rules.marks import N_
from madoguchi.ticketing.ticket_number import normalise

MAX_TEXT = 20_000
# The name on what the command line records (it has no signed-in user).
COMMAND_LINE = "madoguchi（コマンドライン）"


class ActionError(Exception):
    """A request staff must correct; ``str()`` is the Japanese message shown as it is.

    ``ActionError(N_("%(what)sを入力してください"), what=N_("件名"))`` keeps the marked
    message and its values apart too (``message``, ``params``): the web desk shows it in
    the user's language (``web.i18n.error_text``)."""

    def __init__(self, message: str, **params: object) -> None:
        super().__init__(message % params if params else message)
        self.message = message
        self.params = params


def required_text(value: str, what: str, limit: int = MAX_TEXT) -> str:
    value = value.replace("\r\n", "\n").strip()
    if not value:
        raise ActionError(N_("%(what)sを入力してください"), what=what)
    if len(value) > limit:
        raise ActionError(N_("%(what)sは%(limit)s文字以内にしてください"), what=what, limit=limit)
    return value


def ensure_workable(ticket: Ticket) -> None:
    if ticket.merged_into_id is not None:
        raise ActionError(N_("このチケットは統合済みです。統合先のチケットで対応してください"))


def mark_first_response(ticket: Ticket, now: datetime) -> None:
    """A reply by mail or FAX, or a phone call, stops the first-response clock."""
    if ticket.first_responded_at is None:
        ticket.first_responded_at = now


def responded(session: Session, ticket: Ticket, user: StaffUser | None, now: datetime) -> None:
    """The desk answered (mail, FAX, phone): the first-response clock stops, the
    conversation waits for the customer, and an ``urgent`` flag is answered."""
    mark_first_response(ticket, now)
    conversation.move(session, ticket, Event.DESK_RESPONDED, _by(user), now)
    urgent = [f for f in ticket.flags if f.flag is Flag.URGENT]
    if urgent:
        ticket.flags = [f for f in ticket.flags if f.flag is not Flag.URGENT]
        record(session, ticket.id, _by(user), say("フラグ解除: 至急（回答しました）"), at=now,
               kind="flag", detail={"removed": Flag.URGENT.value})


def _by(user: StaffUser | None) -> StaffUser | str:
    return user if user is not None else COMMAND_LINE


def add_message(session: Session, ticket: Ticket, user: StaffUser | None, *,
                direction: Direction, channel: Channel, text: str, now: datetime,
                subject: str = "", recipients: list[str] | None = None) -> Message:
    message = Message(
        ticket_id=ticket.id,
        direction=direction,
        channel=channel,
        sender="",
        sender_name=user.name if user is not None else COMMAND_LINE,
        recipients=recipients or [],
        cc=[],
        references=[],
        subject=subject or ticket.subject,
        date=now,
        received_at=now,
        text=text,
        author_id=user.id if user is not None else None,
    )
    session.add(message)
    return message


def record_note(session: Session, ticket: Ticket, user: StaffUser | None, text: str,
                now: datetime) -> Message:
    """A note the desk itself writes about what was done (not typed by staff)."""
    return add_message(session, ticket, user, direction=Direction.NOTE, channel=Channel.NOTE,
                       text=text, now=now)


def add_note(session: Session, ticket: Ticket, user: StaffUser | None, text: str,
             now: datetime) -> Message:
    """An internal note: staff only, never sent, does not count as a response."""
    ensure_workable(ticket)
    return record_note(session, ticket, user, required_text(text, N_("メモ")), now)


def set_status(ticket: Ticket, status: str, now: datetime, *, by: StaffUser | None = None,
               pending_until: datetime | None = None) -> None:
    """Staff set the conversation's state (or an old status: open, pending, closed).

    Pending takes an optional reminder date (``pending_until``, in the future):
    the daemon reminds the assignee then and brings the ticket back to the desk.
    """
    ensure_workable(ticket)
    chosen = chosen_state(status)
    if chosen is None:
        raise ActionError(N_("ステータスが正しくありません"))
    if pending_until is not None and chosen is State.PENDING and pending_until <= now:
        raise ActionError(N_("保留の再通知日時は、これから先の日時にしてください"))
    session = object_session(ticket)
    assert session is not None, "a stored ticket"
    conversation.move(session, ticket, Event.STAFF_CHOSE, _by(by), now, chosen=chosen,
                      pending_until=pending_until if chosen is State.PENDING else None)


def find_assignee(session: Session, assignee: str) -> StaffUser | None:
    """The active staff member of id ``assignee``; None for "" (no one)."""
    if not assignee:
        return None
    staff_id = parse_id(assignee)
    user = session.get(StaffUser, staff_id) if staff_id is not None else None
    if user is None or not user.active:
        raise ActionError(N_("担当者が見つかりません"))
    return user


def assign(session: Session, ticket: Ticket, assignee: str, *, by: StaffUser | None = None,
           now: datetime | None = None) -> StaffUser | None:
    now = now or datetime.now(UTC)
    before = ticket.assignee
    user = find_assignee(session, assignee)
    if (user.id if user else None) == ticket.assignee_id:
        return user
    ticket.assignee_id = user.id if user is not None else None
    ticket.assignee = user
    record(session, ticket.id, _by(by),
           say("担当者: %(before)s → %(after)s", before=before.name if before else N_("未割当"),
               after=user.name if user else N_("未割当")),
           at=now, kind="assignee", detail={"to": user.id if user else None})
    if user is not None:
        conversation.move(session, ticket, Event.DESK_TOOK, _by(by), now)
    return user


def merge(session: Session, source: Ticket, target_number: str, user: StaffUser | None,
          now: datetime) -> Ticket:
    """Merge a mistaken ticket into the right one: its messages move, it is closed.

    The merged ticket keeps pointing at the other (``merged_into_id``), so its
    number still leads staff there; the right ticket is reopened when it was
    closed and the mistaken one was still being worked. The target is the
    ticket staff typed itself, not the one it went into: a merge into a
    merged ticket is refused with a sentence that says so.
    """
    ensure_workable(source)
    written = target_number.strip()
    target = ticket_by_number(session, written, follow_merges=False)
    if target is None:
        shown = normalise(written) or written[:40] or "(空)"
        raise ActionError(N_("チケット %(shown)s が見つかりません"), shown=shown)
    if target.id == source.id:
        raise ActionError(N_("同じチケットには統合できません"))
    if target.merged_into_id is not None:
        raise ActionError(N_("%(number)s はすでに別のチケットに統合されています"),
                          number=target.number)
    session.execute(
        update(Message).where(Message.ticket_id == source.id).values(ticket_id=target.id)
        .execution_options(synchronize_session=False)
    )
    if source.first_responded_at and target.first_responded_at is None:
        target.first_responded_at = source.first_responded_at
    if source.status != TicketStatus.CLOSED and target.status == TicketStatus.CLOSED:
        conversation.move(session, target, Event.STAFF_CHOSE, _by(user), now,
                          chosen=State.OPEN, why=say("%(number)s の統合", number=source.number))
    conversation.refresh_due(target)
    conversation.move(session, source, Event.STAFF_CHOSE, _by(user), now, chosen=State.CLOSED,
                      why=say("%(number)s に統合", number=target.number))
    source.merged_into_id = target.id
    record(session, target.id, _by(user),
           say("統合: %(number)s をこのチケットに統合", number=source.number),
           at=now, kind="merge", detail={"from": source.number})
    record(session, source.id, _by(user), say("統合: %(number)s に統合", number=target.number),
           at=now,
           kind="merge", detail={"into": target.number})
    record_note(session, target, user, f"{source.number} を統合しました（件名: {source.subject}）",
                now)
    record_note(session, source, user, f"{target.number} に統合しました", now)
    return target
