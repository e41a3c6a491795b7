"""The ticket number (問合せ番号), ``T-2026-000123``: its one format, for everyone.

A prefix (``threading.ticket_prefix``), the year the inquiry was received
(desk time), and the year's sequence number. Staff quote it on the phone,
customers put it in subjects (``[T-2026-000123]``) and on FAX forms; the
numbering, the threading rules, the FAX reader, the QR code and the web
search all read and write it through this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from madoguchi.config.settings import TICKET_PREFIX_PATTERN

YEAR_DIGITS = 4
SEQUENCE_DIGITS = 6


def pattern(prefix: str | None = None) -> str:
    """Regular-expression text of a number with ``prefix`` (any valid prefix when None)."""
    first = re.escape(prefix) if prefix is not None else TICKET_PREFIX_PATTERN
    return rf"{first}-\d{{{YEAR_DIGITS}}}-\d{{{SEQUENCE_DIGITS}}}"


_EXACT = re.compile(rf"({TICKET_PREFIX_PATTERN})-(\d{{{YEAR_DIGITS}}})-(\d{{{SEQUENCE_DIGITS}}})")


@dataclass(frozen=True, order=True)
class TicketNumber:
    prefix: str
    year: int
    sequence: int

    def __str__(self) -> str:
        return f"{self.prefix}-{self.year:0{YEAR_DIGITS}d}-{self.sequence:0{SEQUENCE_DIGITS}d}"

    @property
    def tag(self) -> str:
        """The subject tag the desk's mail carries: ``[T-2026-000123]``."""
        return tag(str(self))

    @classmethod
    def parse(cls, text: str) -> TicketNumber | None:
        """The number ``text`` is exactly (surrounding blanks ignored, any case), else None."""
        m = _EXACT.fullmatch(text.strip().upper())
        if m is None:
            return None
        return cls(m.group(1), int(m.group(2)), int(m.group(3)))


def normalise(text: str) -> str | None:
    """``text`` as a ticket number in its canonical spelling, or None if it is none."""
    number = TicketNumber.parse(text)
    return str(number) if number is not None else None


def tag(number: str) -> str:
    """The subject tag of the ticket numbered ``number`` (as stored): ``[T-2026-000123]``."""
    return f"[{number}]"
