"""The next response's due time and the silence that closes a solved ticket: each product's
calendar and terms, the contract's own winning (``Deadlines``, no database)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from madoguchi.config import load_settings
from madoguchi.ticketing.deadlines import Deadlines

JST = ZoneInfo("Asia/Tokyo")


@dataclass
class Terms:
    support_number: str
    sla_override: dict[str, object] | None
    product: str = "All Gather CRM"


def _deadlines() -> Deadlines:
    settings = load_settings(None, sources=[], products=[
        {"preset": "chatluck", "default": True},
        {"preset": "agcrm", "next_response": {"policy": "business_hours", "business_hours": 2},
         "auto_close_business_days": 3},
    ])
    return Deadlines.from_settings(settings)


def test_a_reply_is_due_again_on_its_products_calendar_and_terms() -> None:
    deadlines = _deadlines()
    replied = datetime(2026, 11, 24, 11, 0, tzinfo=JST)  # Tuesday, before AGCRM's lunch
    plain = Terms("203100060003", None)
    assert deadlines.next_response(replied, plain).due_at == datetime(2026, 11, 24, 14, 0,
                                                                       tzinfo=JST)
    # The desk's default for ChatLuck: 8 business hours on 9:00-12:00, 13:00-17:30:
    # 5.5 h on Tuesday, 2.5 h on Wednesday.
    chatluck = deadlines.next_response(replied, product="ChatLuck").due_at
    assert chatluck == datetime(2026, 11, 25, 11, 30, tzinfo=JST)


def test_the_contracts_own_next_response_terms_win() -> None:
    deadlines = _deadlines()
    replied = datetime(2026, 11, 24, 11, 0, tzinfo=JST)
    own = Terms("203100060003", {"policy": "business_hours", "hours": 1,
                                 "next_response": {"hours": 4}})
    assert deadlines.next_response(replied, own).due_at == datetime(2026, 11, 24, 16, 0,
                                                                     tzinfo=JST)
    # Its first response keeps its own terms (1 hour), untouched by the nested ones.
    assert deadlines.first_response(replied, own).due_at == datetime(2026, 11, 24, 12, 0,
                                                                      tzinfo=JST)


def test_a_solved_ticket_closes_after_its_products_business_days_of_silence() -> None:
    deadlines = _deadlines()
    solved = datetime(2026, 11, 20, 15, 0, tzinfo=JST)  # Friday; Monday 11/23 is a holiday
    assert deadlines.auto_close_at(solved, product="All Gather CRM") == datetime(
        2026, 11, 26, 17, 30, tzinfo=JST)  # Tue, Wed, Thu
    assert deadlines.auto_close_at(solved, product="ChatLuck") == datetime(
        2026, 11, 30, 17, 30, tzinfo=JST)  # the desk's five: Tue 24 ... Mon 30
