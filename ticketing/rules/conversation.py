"""Where a ticket's conversation goes next: a pure rule over its state and what happened.

    new ──desk acts──▶ open ──response──▶ waiting ──customer writes──▶ customer_replied
     │                  │                    │  ▲                         │ (next response due)
     └──── response ────┴────────────────────┘  └──────── response ───────┘
    staff may choose open, waiting, pending (a reminder date, or none), solved, closed;
    pending's date comes ──▶ open; solved + N business days of silence ──▶ closed;
    the customer writing to pending or solved ──▶ customer_replied (open while the first
    response is still owed); to closed: the threading rule decides first (reopen or not).

The deadline still open is the first response while none was given, else the
next response while the customer's reply waits (``open_deadline``); the
queue sorts by it. Whose turn it is gives the coarse ``TicketStatus``.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from madoguchi.ticketing.vocabulary import ConversationState, TicketStatus

State = ConversationState

__all__ = ["Event", "Move", "State", "chosen_state", "next_state", "open_deadline",
           "says_urgent", "status_of"]


class Event(enum.StrEnum):
    CUSTOMER_WROTE = "customer_wrote"  # a follow-up joined (or reopened) the ticket
    DESK_RESPONDED = "desk_responded"  # a reply by mail or FAX, a phone call
    DESK_TOOK = "desk_took"  # an assignment: someone is on it
    STAFF_CHOSE = "staff_chose"  # staff set the state (``chosen``)
    PENDING_DUE = "pending_due"  # the reminder date of a pending ticket came
    SILENCE = "silence"  # a solved ticket's silence lasted long enough


# What staff may choose; the others follow from what happens.
CHOOSABLE = (State.OPEN, State.WAITING, State.PENDING, State.SOLVED, State.CLOSED)
# The words of the older three-status form, as states.
_LEGACY = {"open": State.OPEN, "pending": State.PENDING, "closed": State.CLOSED}

_STATUS = {
    State.NEW: TicketStatus.OPEN, State.OPEN: TicketStatus.OPEN,
    State.CUSTOMER_REPLIED: TicketStatus.OPEN,
    State.WAITING: TicketStatus.PENDING, State.PENDING: TicketStatus.PENDING,
    State.SOLVED: TicketStatus.PENDING,
    State.CLOSED: TicketStatus.CLOSED,
}


@dataclass(frozen=True)
class Move:
    """The state after an event, and whether the next-response clock starts with it."""

    state: State
    starts_next_response: bool = False

    @property
    def status(self) -> TicketStatus:
        return status_of(self.state)


def status_of(state: State) -> TicketStatus:
    """Whose turn: the desk's (open), the customer's or nobody's yet (pending), done."""
    return _STATUS[state]


def chosen_state(value: str) -> State | None:
    """The state staff picked in a form (a state's value, or an old status's); None: none."""
    value = value.strip()
    if value in _LEGACY:
        return _LEGACY[value]
    try:
        state = State(value)
    except ValueError:
        return None
    return state if state in CHOOSABLE else None


def next_state(state: State, event: Event, *, first_responded: bool,
               chosen: State | None = None) -> Move:
    """The desk's rule: the conversation's next state after ``event``."""
    if event is Event.STAFF_CHOSE:
        if chosen is None or chosen not in CHOOSABLE:
            raise ValueError(f"not a state staff may choose: {chosen!r}")
        return Move(chosen)
    if event is Event.CUSTOMER_WROTE:
        if state is State.CUSTOMER_REPLIED:
            return Move(state)  # the clock of the first unanswered reply runs on
        if not first_responded:
            # The first response is still owed: that clock stays, back to the desk.
            return Move(State.OPEN if state is not State.NEW else State.NEW)
        return Move(State.CUSTOMER_REPLIED, starts_next_response=True)
    if event is Event.DESK_RESPONDED:
        return Move(State.WAITING)
    if event is Event.DESK_TOOK:
        return Move(State.OPEN if state is State.NEW else state)
    if event is Event.PENDING_DUE:
        return Move(State.OPEN if state is State.PENDING else state)
    if event is Event.SILENCE:
        return Move(State.CLOSED if state is State.SOLVED else state)
    raise ValueError(f"unknown event {event!r}")


def open_deadline(state: State, *, first_response_due: datetime | None,
                  first_responded: bool, next_response_due: datetime | None
                  ) -> datetime | None:
    """The deadline the desk still has to meet: the first response, else the next one."""
    if state is State.CLOSED:
        return None
    if not first_responded:
        return first_response_due
    if state is State.CUSTOMER_REPLIED:
        return next_response_due
    return None


_QUOTED = re.compile(r"^\s*(>|＞|\|)")
_QUOTE_HEADER = re.compile(r"(wrote|書きました|様:|様：|-----\s*original message)", re.I)


def says_urgent(subject: str, text: str, words: Iterable[str]) -> bool:
    """The subject or the customer's own lines (not what they quote) say it is urgent.

    Compared after NFKC, ignoring case: 「至急」, 「【緊急】」, "URGENT".
    """
    wanted = [unicodedata.normalize("NFKC", w).casefold() for w in words if w.strip()]
    if not wanted:
        return False
    own: list[str] = [subject]
    for line in text.splitlines():
        if _QUOTED.match(line):
            continue
        if _QUOTE_HEADER.search(line):
            break  # what follows is the message they answer
        own.append(line)
    flat = unicodedata.normalize("NFKC", "\n".join(own)).casefold()
    return any(w in flat for w in wanted)
