from __future__ import annotations

import pytest

from madoguchi.config import SupportNumberSettings
from madoguchi.ticketing.support_number import (
    find_support_number,
    luhn_check_digit,
    luhn_valid,
    parse_support_number,
)

CFG = SupportNumberSettings()
VALID = "203100010008"


def test_check_digit_completes_a_luhn_number() -> None:
    assert luhn_check_digit("20310001000") == "8"
    assert luhn_valid(VALID)
    assert not luhn_valid("203100010009")


@pytest.mark.parametrize(
    "written",
    [
        "2031-0001-0008",
        "203100010008",
        "２０３１－０００１－０００８",
        "2031 0001 0008",
        "２０３１ー０００１ー０００８",
        "2031−0001−0008",
    ],
)
def test_number_is_accepted_however_it_is_written(written: str) -> None:
    number = parse_support_number(written, CFG)
    assert number is not None
    assert number.digits == VALID
    assert number.display == "2031-0001-0008"


def test_number_with_failing_check_digit_is_never_accepted() -> None:
    assert parse_support_number("2031-0001-0009", CFG) is None
    found = find_support_number("", "サポートサービス番号: 2031-0001-0009", CFG)
    assert found.number is None
    assert found.invalid == ("203100010009",)


def test_number_at_the_top_of_the_subject_is_found() -> None:
    found = find_support_number("【2031-0001-0008】ログインできません", "本文", CFG)
    assert found.number and found.number.digits == VALID


def test_number_after_its_label_is_found_anywhere_in_the_body() -> None:
    lines = ["いつもお世話になっております。"] * 10
    body = "\n".join([*lines, "サポートサービス番号：２０３１-０００１-０００８"])
    found = find_support_number("質問", body, CFG)
    assert found.number and found.number.digits == VALID


def test_number_on_the_line_below_its_label_is_found() -> None:
    body = "\n".join(["x"] * 8 + ["サポートサービス番号", "2031 0001 0008"])
    assert find_support_number("", body, CFG).number is not None


def test_unlabelled_number_deep_in_the_body_is_not_taken() -> None:
    body = "\n".join(["本文です。"] * 10 + ["2031-0001-0008"])
    assert find_support_number("", body, CFG).number is None


def test_phone_number_beside_the_support_number_does_not_hide_it() -> None:
    found = find_support_number("", "TEL 0312345678 2031 0001 0008", CFG)
    assert found.number and found.number.digits == VALID


def test_pattern_and_check_are_configuration() -> None:
    cfg = SupportNumberSettings(digits_pattern=r"^\d{8}$", display_groups=[4, 4], check="none")
    number = parse_support_number("1234-5678", cfg)
    assert number and number.display == "1234-5678"
    assert parse_support_number(VALID, cfg) is None
