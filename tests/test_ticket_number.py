"""The ticket number's one format: written, read back, found in text."""

from __future__ import annotations

import re

from madoguchi.ticketing.ticket_number import TicketNumber, normalise, pattern


def test_a_number_is_written_with_its_year_and_six_digit_sequence() -> None:
    number = TicketNumber("T", 2026, 123)
    assert str(number) == "T-2026-000123"
    assert number.tag == "[T-2026-000123]"


def test_a_written_number_reads_back_as_the_same_number() -> None:
    assert TicketNumber.parse("T-2026-000123") == TicketNumber("T", 2026, 123)
    assert TicketNumber.parse(" hd-2031-999999 ") == TicketNumber("HD", 2031, 999999)


def test_anything_else_is_not_a_ticket_number() -> None:
    for text in ("T-2026-00123", "T-26-000123", "T-2026-0001234", "TOOLONG-2026-000123",
                 "1-2026-000123", "T_2026_000123", "[T-2026-000123]", ""):
        assert TicketNumber.parse(text) is None, text
        assert normalise(text) is None, text


def test_normalise_gives_the_canonical_spelling() -> None:
    assert normalise("t-2026-000001") == "T-2026-000001"


def test_pattern_finds_numbers_of_one_prefix_or_of_any() -> None:
    text = "Re: [T-2026-000001] and HD-2027-000002"
    assert re.findall(pattern("T"), text) == ["T-2026-000001"]
    assert re.findall(pattern(), text) == ["T-2026-000001", "HD-2027-000002"]


def test_numbers_sort_by_year_then_sequence() -> None:
    a, b, c = TicketNumber("T", 2026, 2), TicketNumber("T", 2026, 10), TicketNumber("T", 2027, 1)
    assert sorted([c, b, a]) == [a, b, c]
