"""Placeholders in text modules and signatures, filled from plain facts (no database)."""

from __future__ import annotations

from madoguchi.ticketing.rules.placeholders import PlaceholderFacts, fill, unknown_placeholders

FACTS = PlaceholderFacts(company="株式会社さくら商事", contact_name="山田 太郎",
                         ticket_number="T-2026-000123", product="ChatLuck",
                         due="11月25日(火) 17:30", agent="佐藤 彩香")


def test_every_placeholder_is_filled_and_the_contact_is_addressed_with_sama() -> None:
    text = "{会社名}\n{お客様名}\n{製品名} の{担当者名}です。受付番号 {受付番号}、{回答期限}まで。"
    assert fill(text, FACTS.values()) == (
        "株式会社さくら商事\n山田 太郎 様\nChatLuck の佐藤 彩香です。"
        "受付番号 T-2026-000123、11月25日(火) 17:30まで。")


def test_an_unknown_contact_is_still_addressed_politely_and_an_empty_company_line_goes() -> None:
    facts = PlaceholderFacts("", "", "T-2026-000001", "", "", "佐藤 彩香")
    assert fill("{会社名}\n{お客様名}\n\nいつもお世話になっております。\n", facts.values()) == \
        "ご担当者 様\n\nいつもお世話になっております。\n"


def test_a_mistyped_placeholder_is_found_and_left_as_written() -> None:
    assert unknown_placeholders("{会社名} {会社} {お客様名} {担当}") == ["会社", "担当"]
    assert fill("{会社} 様", FACTS.values()) == "{会社} 様"
