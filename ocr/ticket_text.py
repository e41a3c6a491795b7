"""The 問合せ番号 as OCR renders it, and its canonical spelling.

The format is ``madoguchi.ticketing.ticket_number``'s; what OCR does to it
(丁 for T, odd dashes, stray spaces) is the reader's own business.
"""

from __future__ import annotations

import re
import unicodedata

from madoguchi.ticketing.ticket_number import SEQUENCE_DIGITS, YEAR_DIGITS, TicketNumber

# Every dash OCR reads for a hyphen, and the kanji 一 and katakana ー it takes for one.
DASHES = "-‐‑‒–—―−ｰー－一"


def ticket_pattern(prefix: str) -> re.Pattern[str]:
    """A ticket number as OCR renders it: odd dashes, stray spaces, 丁 for T."""
    dash = "[" + re.escape(DASHES) + "]"
    first = re.escape(prefix)
    if prefix.startswith("T"):
        first = "[T丁]" + re.escape(prefix[1:])
    return re.compile(
        rf"(?<![A-Za-z0-9]){first}\s*{dash}?\s*(\d{{{YEAR_DIGITS}}})\s*{dash}"
        rf"\s*(\d{{{SEQUENCE_DIGITS}}})(?![0-9])"
    )


def find_ticket_number(text: str, prefix: str = "T") -> str | None:
    """The first ticket number in ``text``, canonically spelled (``T-2026-000123``)."""
    m = ticket_pattern(prefix).search(unicodedata.normalize("NFKC", text))
    if m is None:
        return None
    return str(TicketNumber(prefix, int(m.group(1)), int(m.group(2))))
