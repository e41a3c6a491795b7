"""The decision over a form's digit boxes: registered, a clear margin, every digit seen."""

from __future__ import annotations

import itertools
import math

import pytest

from madoguchi.ocr.fulltext import mask_not_the_number
from madoguchi.ocr.sender import national_digits
from madoguchi.ticketing.rules import fax_number
from madoguchi.ticketing.rules.fax_number import choose_number, valid_readings
from madoguchi.ticketing.support_number import luhn_valid

NUMBER = "203100010008"


def _sure(digits: str, p: float = 0.97) -> list[list[float]]:
    rows = []
    for d in digits:
        row = [(1 - p) / 9] * 10
        row[int(d)] = p
        rows.append(row)
    return rows


def test_valid_readings_are_the_k_most_probable_luhn_numbers_exactly():
    probs = _sure(NUMBER, 0.6)
    probs[3] = [0.1] * 10  # one box anyone's guess
    got = valid_readings(probs, k=5)
    assert all(luhn_valid(r.digits) for r in got)
    assert got[0].digits == NUMBER
    assert [r.log_weight for r in got] == sorted((r.log_weight for r in got), reverse=True)
    small = [[0.5, 0.3, 0.2] + [0.0] * 7 for _ in range(4)]

    def weight(s: str) -> float:
        return sum(math.log(max(small[i][int(c)], 1e-12)) for i, c in enumerate(s))

    brute = sorted(
        (w for ds in itertools.product(range(3), repeat=4)
         if luhn_valid(w := "".join(map(str, ds)))),
        key=weight, reverse=True,
    )
    found = valid_readings(small, k=3)
    assert [round(r.log_weight, 9) for r in found] == [round(weight(w), 9) for w in brute[:3]]
    assert all(r.log_weight == pytest.approx(weight(r.digits)) for r in found)


def test_a_clear_registered_reading_is_accepted():
    probs = _sure(NUMBER)
    choice = choose_number(valid_readings(probs), probs, {NUMBER})
    assert choice.digits == NUMBER
    assert choice.margin >= fax_number.MARGIN


def test_the_likeliest_reading_must_be_registered_even_when_another_is():
    probs = _sure(NUMBER)
    other = valid_readings(probs)[1].digits
    choice = choose_number(valid_readings(probs), probs, {other})
    assert choice.digits is None
    assert "no registered number" in choice.reason and other in choice.reason


def test_two_close_readings_go_to_triage_unless_the_sender_tips_a_near_thing():
    probs = _sure(NUMBER)
    # Two boxes torn between two digits each: another valid reading comes close.
    rival = next(r.digits for r in valid_readings(probs)[1:])
    for i, (a, b) in enumerate(zip(NUMBER, rival, strict=True)):
        if a != b:
            probs[i] = [0.0001] * 10
            probs[i][int(a)], probs[i][int(b)] = 0.5, 0.45
    readings = valid_readings(probs)
    assert choose_number(readings, probs, {NUMBER, rival}).digits is None
    # The sender's own customer's number, a priori 20 times likelier: still within
    # the margin of 1000 to one, so still triage.
    assert choose_number(readings, probs, {NUMBER, rival}, {NUMBER}).digits is None


def test_a_digit_nobody_saw_is_never_accepted_whatever_the_margin():
    probs = _sure(NUMBER)
    probs[5] = [0.01] * 10
    probs[5][int(NUMBER[5])] = 0.04
    choice = choose_number(valid_readings(probs), probs, {NUMBER})
    assert choice.digits is None


def test_no_valid_reading_at_all():
    assert choose_number([], [], {NUMBER}).digits is None


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("サポートサービス番号（必須） （記入例：7298-0939-8492）", False),
        ("製品シリアル番号：4021-7730-1185", False),
        ("S/N 4021 7730 1185", False),
        ("TEL 0312345678 FAX 0312345679", False),
        ("サポートサービス番号：2031-0001-0008", True),
    ],
)
def test_numbers_that_a_word_marks_as_another_are_blanked(line, kept):
    masked = mask_not_the_number(line)
    assert len(masked) == len(line)
    assert (sum(ch.isdigit() for ch in masked) >= 12) is kept


@pytest.mark.parametrize(
    ("header", "digits"),
    [
        ("2026/10/03 15:39 株式会社さくら商事 FAX 052-155-3153 P.001/001", "0521553153"),
        ("26/04/03 11:29 FROM +81 3 6659 0911 P. 1", "0366590911"),
        ("FAX受信 03-5555-0199から（2枚）", "0355550199"),
        ("2026/10/03 15:39 P.001/001", None),
    ],
)
def test_the_sending_machines_number_is_read_from_its_header(header, digits):
    assert national_digits(header) == digits


def test_a_clear_reading_needs_the_margin_and_every_digit_seen_but_no_registry():
    from madoguchi.ticketing.rules.fax_number import clear_reading

    probs = _sure(NUMBER)
    assert clear_reading(valid_readings(probs), probs) == NUMBER
    faint = _sure(NUMBER)
    faint[2] = [0.003] * 10  # a box where no digit was seen
    assert clear_reading(valid_readings(faint), faint) is None
    assert clear_reading([], []) is None


def test_the_decision_replaces_the_boxes_problem_of_its_page_with_its_reason():
    problems = [
        "page 1: the support number boxes cannot be read (read 13 digits, not 12)",
        "page 2: the support number boxes cannot be read (check digit fails)",
        "問合せ番号 reads disagree: T-2026-000001, T-2026-000007",
    ]
    refused = fax_number.Choice(None, f"{NUMBER} is only 3 times as likely as 203100020007")
    assert fax_number.boxes_decided(problems, 1, refused) == [
        f"page 1: the support number boxes cannot be decided ({refused.reason})",
        problems[1],
        problems[2],
    ]
    accepted = fax_number.Choice(NUMBER, "registered; 5e+04 times as likely as any other")
    assert fax_number.boxes_decided(problems, 1, accepted) == [problems[2]]
