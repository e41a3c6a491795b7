"""Placeholders in text modules and signatures: ``{会社名}`` and kin, filled from plain facts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from madoguchi.ticketing.rules.marks import N_

# The names staff write, in the order the management page lists them.
PLACEHOLDERS: dict[str, str] = {
    "会社名": N_("お客様の会社名"),
    "お客様名": N_("窓口担当者のお名前と「様」（山田 太郎 様）"),
    "受付番号": N_("チケット番号（T-2026-000123）"),
    "製品名": N_("製品名"),
    "回答期限": N_("一次回答の期限（11月25日(火) 17:30）"),
    "担当者名": N_("返信する担当者（あなた）の名前"),
}
_PLACEHOLDER = re.compile(r"\{([^{}\s]{1,20})\}")


@dataclass(frozen=True)
class PlaceholderFacts:
    company: str
    contact_name: str
    ticket_number: str
    product: str
    due: str
    agent: str

    def values(self) -> dict[str, str]:
        contact = self.contact_name.strip()
        return {
            "会社名": self.company,
            # Without a known contact the mail still addresses a person politely.
            "お客様名": f"{contact} 様" if contact else "ご担当者 様",
            "受付番号": self.ticket_number,
            "製品名": self.product,
            "回答期限": self.due,
            "担当者名": self.agent,
        }


def unknown_placeholders(text: str) -> list[str]:
    """The ``{…}`` names in ``text`` the desk does not know (a typo staff should see)."""
    return sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - PLACEHOLDERS.keys())


def fill(text: str, values: Mapping[str, str]) -> str:
    """``text`` with every known placeholder replaced; a line left empty by one is dropped."""
    out: list[str] = []
    for line in text.splitlines():
        filled = _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), line)
        if filled.strip() or not _PLACEHOLDER.search(line):
            out.append(filled)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")
