"""The ticket number (問合せ番号), ``T-2026-000123``: its one format, for everyone.

A prefix (``threading.ticket_prefix``), the year the inquiry was received
(desk time), and the year's sequence number. Staff quote it on the phone,
customers put it in subjects (``[T-2026-000123]``) and on FAX forms; the
numbering, the threading rules, the FAX reader, the QR code and the web
search all read and write it through this module.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

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


# -- recognising a number customers quote --------------------------------------
#
# Customers copy the number from our mail, or type it: in full width
# (Ｔ－２０２６－０００００２), with a long-vowel mark or a dash for the hyphen,
# after a label (受付番号：…, 受付No. …, お問い合わせ番号【…】), in quoted lines.

# Dashes an IME or a word processor puts where the hyphen was; NFKC leaves them.
_DASHES = str.maketrans(dict.fromkeys("‐‑‒–—―−ー─━", "-"))
# Opening brackets a number may stand in after its label (after NFKC: （ is (, ［ is [).
_OPEN = "[(「【『〔"
_TAG_OPEN, _TAG_CLOSE = "[【", "]】"


def fold(text: str) -> str:
    """Full width to ASCII (NFKC), dashes to hyphens: how numbers are looked for."""
    return unicodedata.normalize("NFKC", text).translate(_DASHES)


def _label_pattern(label: str) -> str:
    folded = fold(label).strip()
    dot = folded.endswith(".")
    words = (folded[:-1] if dot else folded).split()
    return r"\s*+".join(re.escape(word) for word in words) + (r"\.?+" if dot else "")


@lru_cache(maxsize=16)
def _quoted(prefix: str, labels: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = sorted({_label_pattern(label) for label in labels}, key=len, reverse=True)
    # Possessive quantifiers: optional items between runs of blanks would
    # otherwise backtrack in cubic time on a body full of spaces.
    return re.compile(
        "(?:" + "|".join(alternatives) + r")\s*+[:]?+\s*+"
        + "[" + re.escape(_OPEN) + r"]?+\s*+(" + pattern(prefix) + r")(?![0-9])",
        re.IGNORECASE,
    )


@lru_cache(maxsize=16)
def _tagged(prefix: str) -> re.Pattern[str]:
    return re.compile(
        "[" + re.escape(_TAG_OPEN) + r"][ \t]*+(" + pattern(prefix) + r")[ \t]*+["
        + re.escape(_TAG_CLOSE) + "]",
        re.IGNORECASE,
    )


def subject_tags(subject: str, prefix: str) -> list[str]:
    """Numbers in the subject's tags, ``[T-2026-000123]`` or ``【T-2026-000123】``, in any width."""
    return _canonical(_tagged(prefix).findall(fold(subject)))


# Six digits in a row, in either width: a text without them quotes no number
# (most new mail), and is spared the folding and the labels.
_SEQUENCE = re.compile(f"[0-9０-９]{{{SEQUENCE_DIGITS}}}")


def quoted_numbers(text: str, prefix: str, labels: Sequence[str]) -> list[str]:
    """Numbers written after one of ``labels`` (受付番号：T-…, also in quoted lines)."""
    if _SEQUENCE.search(text) is None:
        return []
    return _canonical(_quoted(prefix, tuple(labels)).findall(fold(text)))


def _canonical(found: list[str]) -> list[str]:
    numbers = (normalise(number) for number in found)
    return list(dict.fromkeys(number for number in numbers if number is not None))
