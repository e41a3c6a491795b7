"""The conversation rule: each event moves the state as the desk works, with no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from madoguchi.ticketing.rules.conversation import (
    Event,
    State,
    chosen_state,
    next_state,
    open_deadline,
    says_urgent,
    status_of,
)
from madoguchi.ticketing.vocabulary import TicketStatus

FIRST = datetime(2026, 12, 3, 8, 30, tzinfo=UTC)
NEXT = FIRST + timedelta(days=2)


@pytest.mark.parametrize("state", [State.WAITING, State.PENDING, State.SOLVED, State.CLOSED,
                                   State.OPEN])
def test_a_customer_reply_after_the_first_response_comes_back_with_the_next_response_due(
    state: State,
) -> None:
    move = next_state(state, Event.CUSTOMER_WROTE, first_responded=True)
    assert move.state is State.CUSTOMER_REPLIED and move.starts_next_response
    assert move.status is TicketStatus.OPEN  # the desk's turn


def test_a_second_customer_reply_keeps_the_clock_of_the_first_unanswered_one() -> None:
    move = next_state(State.CUSTOMER_REPLIED, Event.CUSTOMER_WROTE, first_responded=True)
    assert move.state is State.CUSTOMER_REPLIED and not move.starts_next_response


@pytest.mark.parametrize(("state", "after"), [(State.NEW, State.NEW), (State.OPEN, State.OPEN),
                                               (State.PENDING, State.OPEN),
                                               (State.CLOSED, State.OPEN)])
def test_a_customer_writing_before_any_response_leaves_the_first_response_clock(
    state: State, after: State,
) -> None:
    move = next_state(state, Event.CUSTOMER_WROTE, first_responded=False)
    assert move.state is after and not move.starts_next_response


def test_a_response_waits_for_the_customer_and_taking_a_new_ticket_opens_it() -> None:
    for state in State:
        assert next_state(state, Event.DESK_RESPONDED, first_responded=True).state \
            is State.WAITING
    assert next_state(State.NEW, Event.DESK_TOOK, first_responded=False).state is State.OPEN
    assert next_state(State.WAITING, Event.DESK_TOOK, first_responded=True).state \
        is State.WAITING


def test_pending_comes_back_at_its_date_and_solved_closes_after_its_silence() -> None:
    assert next_state(State.PENDING, Event.PENDING_DUE, first_responded=True).state is State.OPEN
    assert next_state(State.WAITING, Event.PENDING_DUE, first_responded=True).state \
        is State.WAITING  # no longer pending: nothing to do
    assert next_state(State.SOLVED, Event.SILENCE, first_responded=True).state is State.CLOSED
    assert next_state(State.CUSTOMER_REPLIED, Event.SILENCE, first_responded=True).state \
        is State.CUSTOMER_REPLIED  # the customer broke the silence


def test_staff_choose_among_the_states_that_do_not_follow_from_events() -> None:
    assert chosen_state("solved") is State.SOLVED
    assert chosen_state("pending") is State.PENDING  # the older form's word too
    assert chosen_state("customer_replied") is None  # the customer sets that one
    assert chosen_state("new") is None and chosen_state("bogus") is None
    with pytest.raises(ValueError):
        next_state(State.OPEN, Event.STAFF_CHOSE, first_responded=True, chosen=State.NEW)
    assert next_state(State.OPEN, Event.STAFF_CHOSE, first_responded=True,
                      chosen=State.SOLVED).status is TicketStatus.PENDING


def test_whose_turn_reads_as_the_coarse_status() -> None:
    assert {s: status_of(s) for s in State} == {
        State.NEW: TicketStatus.OPEN, State.OPEN: TicketStatus.OPEN,
        State.CUSTOMER_REPLIED: TicketStatus.OPEN, State.WAITING: TicketStatus.PENDING,
        State.PENDING: TicketStatus.PENDING, State.SOLVED: TicketStatus.PENDING,
        State.CLOSED: TicketStatus.CLOSED,
    }


def test_the_deadline_still_open_is_the_first_response_then_the_next_one() -> None:
    kw = {"first_response_due": FIRST, "next_response_due": NEXT}
    assert open_deadline(State.NEW, first_responded=False, **kw) == FIRST
    assert open_deadline(State.PENDING, first_responded=False, **kw) == FIRST
    assert open_deadline(State.CUSTOMER_REPLIED, first_responded=True, **kw) == NEXT
    assert open_deadline(State.WAITING, first_responded=True, **kw) is None
    assert open_deadline(State.CLOSED, first_responded=False, **kw) is None


WORDS = ["至急", "緊急", "urgent"]


@pytest.mark.parametrize(("subject", "text", "urgent"), [
    ("Re: 件名", "至急ご確認ください。", True),
    ("【緊急】再発しました", "", True),
    ("Re: ログイン", "ＵＲＧＥＮＴ: still broken", True),  # full width, any case
    ("Re: ログイン", "ありがとうございました。\n> 至急お願いします", False),  # quoted
    ("Re: ログイン", "了解です。\n2026年12月1日 山田 様:\n至急お願いします", False),
    ("Re: ログイン", "解決しました。", False),
])
def test_an_urgent_follow_up_is_the_customer_s_own_words_not_what_they_quote(
    subject: str, text: str, urgent: bool,
) -> None:
    assert says_urgent(subject, text, WORDS) is urgent
