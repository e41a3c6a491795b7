"""The signed link to a contract's FAX form: made and checked by ``ticketing.fax_forms``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from madoguchi.ticketing.fax_forms import (
    FormFill,
    link_path,
    link_url,
    link_valid,
    parse_link,
)
from madoguchi.ticketing.japanese import format_closed_days_ja
from madoguchi.ticketing.models import Contract

KEY = b"k" * 64
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _contract(id_: int = 7, number: str = "203100010008") -> Contract:
    return Contract(id=id_, support_number=number)


def _parts(path: str) -> tuple[str, str, str]:
    _, prefix, contract, expires, signature = path.split("/")
    assert prefix == "fax-form"
    return contract, expires, signature


def _valid(path: str, *, key: bytes = KEY, number: str = "203100010008",
           now: datetime = NOW) -> bool:
    contract, expires, signature = _parts(path)
    parsed = parse_link(contract, expires)
    assert parsed is not None
    return link_valid(key, parsed[0], number, parsed[1], signature, now)


def test_a_fresh_link_is_valid_until_it_expires() -> None:
    path = link_path(KEY, _contract(), NOW + timedelta(days=90))
    assert _valid(path)
    assert _valid(path, now=NOW + timedelta(days=90) - timedelta(seconds=1))
    assert not _valid(path, now=NOW + timedelta(days=90))
    assert not _valid(path, now=NOW + timedelta(days=91))


def test_every_tampered_part_makes_it_no_link() -> None:
    path = link_path(KEY, _contract(), NOW + timedelta(days=90))
    contract, expires, signature = _parts(path)
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert not _valid(f"/fax-form/{contract}/{expires}/{flipped}")
    assert not _valid(f"/fax-form/{contract}/{int(expires) + 86400}/{signature}")
    assert not _valid(f"/fax-form/8/{expires}/{signature}")
    assert not _valid(f"/fax-form/{contract}/{expires}/{signature[:-2]}")
    assert not _valid(f"/fax-form/{contract}/{expires}/")
    assert not _valid(path, number="203100020007")  # the contract's number changed
    assert not _valid(path, key=b"x" * 64)  # another desk's secret
    assert not link_valid(KEY, 7, "203100010008", int(expires), "ｓｉｇ", NOW)


@pytest.mark.parametrize(("contract", "expires"), [
    ("7a", "1"), ("-7", "1"), ("７", "1"), ("7", "1e9"), ("7", ""), ("1" * 19, "1"),
    ("7", "1" * 13),
])
def test_path_parts_that_are_not_plain_numbers_are_refused(contract: str, expires: str) -> None:
    assert parse_link(contract, expires) is None


def test_the_link_is_on_the_public_url_and_says_when_it_expires() -> None:
    url, expires = link_url("https://desk.example.co.jp/", KEY, _contract(), NOW, 30)
    assert expires == NOW + timedelta(days=30)
    assert url.startswith("https://desk.example.co.jp/fax-form/7/")
    assert _valid(url.removeprefix("https://desk.example.co.jp"))
    with pytest.raises(ValueError, match="public_url"):
        link_url("", KEY, _contract(), NOW, 30)


def test_a_fill_lists_only_the_fields_it_has() -> None:
    assert FormFill(company="株式会社さくら商事", contact="山田 太郎").values() == {
        "company": "株式会社さくら商事", "contact": "山田 太郎"}


def test_closed_days_follow_the_calendar() -> None:
    weekdays = [[(540, 1050)]] * 5 + [[], []]
    assert format_closed_days_ja(weekdays, True, [((12, 29), (1, 3))], False) == \
        "土日祝・年末年始"
    assert format_closed_days_ja([[(540, 1050)]] * 7, False, [], True) == "弊社休業日"
    assert format_closed_days_ja([[(540, 1050)]] * 7, False, [], False) == ""
