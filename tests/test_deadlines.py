"""The one first-response rule: the desk's calendar and policy, the contract's terms winning."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from madoguchi.config import load_settings
from madoguchi.ticketing.deadlines import Deadlines

JST = ZoneInfo("Asia/Tokyo")


@dataclass(frozen=True)
class Terms:
    support_number: str
    sla_override: dict[str, object] | None


def test_without_a_contract_the_desks_default_applies() -> None:
    deadlines = Deadlines.from_settings(load_settings(None))
    # Tuesday 2026-11-24 10:00: due at that day's close (17:30 by default).
    due = deadlines.first_response(datetime(2026, 11, 24, 10, 0, tzinfo=JST))
    assert due.due_at == datetime(2026, 11, 24, 17, 30, tzinfo=JST)
    assert deadlines.first_response(datetime(2026, 11, 24, 10, 0, tzinfo=JST),
                                    Terms("203100000008", None)) == due


def test_a_contracts_own_terms_win() -> None:
    deadlines = Deadlines.from_settings(load_settings(None))
    four_hours = Terms("203100000008", {"policy": "business_hours", "hours": 4})
    due = deadlines.first_response(datetime(2026, 11, 24, 10, 0, tzinfo=JST), four_hours)
    # 10:00-12:00 and 13:00-15:00 (the lunch hour does not count).
    assert due.due_at == datetime(2026, 11, 24, 15, 0, tzinfo=JST)


def test_a_mistyped_contract_term_falls_back_to_the_default() -> None:
    deadlines = Deadlines.from_settings(load_settings(None))
    broken = Terms("203100000008", {"policy": "whenever"})
    received = datetime(2026, 11, 24, 10, 0, tzinfo=JST)
    assert deadlines.first_response(received, broken) == deadlines.first_response(received)
