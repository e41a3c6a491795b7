"""The one ticket lookup: by number in any spelling, following merges when asked."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.orm import selectinload

from madoguchi.app import Desk
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.lookup import ticket_by_number
from madoguchi.ticketing.models import Ticket
from tests.test_web_kit import make_ticket


def _merge(desk: Desk, source: str, target: str) -> None:
    with transaction(desk.factory) as s:
        merged = ticket_by_number(s, source, follow_merges=False)
        into = ticket_by_number(s, target, follow_merges=False)
        assert merged is not None and into is not None
        merged.merged_into_id = into.id


def test_a_ticket_is_found_by_its_number_in_any_case_and_with_blanks(desk: Desk) -> None:
    number = make_ticket(desk)
    with desk.factory() as s:
        for written in (number, number.lower(), f"  {number}\n"):
            found = ticket_by_number(s, written, follow_merges=False)
            assert found is not None and found.number == number


def test_what_is_no_ticket_number_or_no_ones_is_none(desk: Desk) -> None:
    make_ticket(desk)
    with desk.factory() as s:
        for written in ("", "T-2026-1", "T-1999-000001", "SELECT 1", "T-2026-000001x"):
            assert ticket_by_number(s, written, follow_merges=True) is None


def test_a_merged_number_leads_to_the_ticket_it_went_into_only_when_asked(desk: Desk) -> None:
    first, second, third = make_ticket(desk), make_ticket(desk), make_ticket(desk)
    _merge(desk, first, second)
    _merge(desk, second, third)
    with desk.factory() as s:
        itself = ticket_by_number(s, first, follow_merges=False)
        followed = ticket_by_number(s, first, follow_merges=True)
        assert itself is not None and itself.number == first
        assert followed is not None and followed.number == third  # along the whole chain


def test_a_merge_chain_that_loops_ends_where_it_would_repeat(desk: Desk) -> None:
    first, second = make_ticket(desk), make_ticket(desk)
    _merge(desk, first, second)
    _merge(desk, second, first)
    with desk.factory() as s:
        found = ticket_by_number(s, first, follow_merges=True)
        assert found is not None and found.number in (first, second)


def test_loader_options_apply_to_the_ticket_returned(desk: Desk) -> None:
    first, second = make_ticket(desk), make_ticket(desk)
    _merge(desk, first, second)
    with desk.factory() as s:
        found = ticket_by_number(s, first, follow_merges=True,
                                 options=[selectinload(Ticket.messages)])
        assert found is not None and found.number == second
        assert "messages" not in inspect(found).unloaded
