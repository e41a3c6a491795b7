"""The support service number (サポートサービス番号): finding and checking it.

Pure functions. Customers are told to put the number at the very top of the
mail or FAX; some write it after its label anywhere. They write it with or
without hyphens, in full-width digits, with spaces. A number whose check
digit fails is never matched to a contract.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from madoguchi.config import SupportNumberSettings

# Separators people put between digit groups: ASCII and full-width hyphens,
# dashes, minus signs, the long-vowel mark IMEs produce, and spaces.
_SEPARATORS = "-‐‑‒–—―−ｰー－ 　"
_CANDIDATE = re.compile(
    r"(?<![0-9])[0-9](?:[" + re.escape(_SEPARATORS) + r"]?[0-9]){5,30}(?![0-9])"
)


@dataclass(frozen=True)
class SupportNumber:
    """A number that passed the configured format and check digit."""

    digits: str
    display: str

    def __str__(self) -> str:
        return self.display


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_check_digit(body: str) -> str:
    """The digit that makes ``body + digit`` Luhn-valid (for issuing numbers)."""
    for d in "0123456789":
        if luhn_valid(body + d):
            return d
    raise AssertionError("unreachable: one digit always completes a Luhn number")


def _fold(text: str) -> str:
    # NFKC turns full-width digits and letters into ASCII ones.
    return unicodedata.normalize("NFKC", text)


def _digits_only(candidate: str) -> str:
    return "".join(ch for ch in candidate if ch.isdigit())


def format_number(digits: str, cfg: SupportNumberSettings) -> str:
    parts, pos = [], 0
    for size in cfg.display_groups:
        parts.append(digits[pos : pos + size])
        pos += size
    if pos < len(digits):
        parts.append(digits[pos:])
    return "-".join(p for p in parts if p)


def parse_support_number(text: str, cfg: SupportNumberSettings) -> SupportNumber | None:
    """Validate one written number; None when its format or check digit fails."""
    digits = _digits_only(_fold(text))
    if not re.fullmatch(cfg.digits_pattern, digits):
        return None
    if cfg.check == "luhn" and not luhn_valid(digits):
        return None
    return SupportNumber(digits=digits, display=format_number(digits, cfg))


@dataclass(frozen=True)
class NumberSearch:
    """What a message says about its support number.

    ``number`` is the first valid one; ``invalid`` lists well-formed digit
    strings whose check digit failed, so staff can see what was written.
    """

    number: SupportNumber | None
    invalid: tuple[str, ...] = ()


# The number stands near its label or at the start of a line; looking further
# along a hostile megabyte-long line would only cost time.
_MAX_PLACE = 300
_MAX_DIGITS = 32
_SPLIT = re.compile("[" + re.escape(_SEPARATORS) + "]")


def _candidates(line: str, cfg: SupportNumberSettings) -> list[str]:
    """Digit strings of the configured shape, taken at group boundaries.

    A run such as ``TEL 0312345678 2031-1234-5673`` is one run of digits and
    separators; every span of whole groups that has the right shape is a
    candidate, so a phone number beside the support number does not hide it.
    """
    found: list[str] = []
    for run in _CANDIDATE.finditer(_fold(line[:_MAX_PLACE])):
        groups = _SPLIT.split(run.group(0))
        for i in range(len(groups)):
            digits = ""
            for group in groups[i:]:
                digits += group
                if len(digits) > _MAX_DIGITS:
                    break
                if re.fullmatch(cfg.digits_pattern, digits):
                    found.append(digits)
    return found


def find_support_number(subject: str, body: str, cfg: SupportNumberSettings) -> NumberSearch:
    """Look where customers are told to write it: subject, top of body, after a label."""
    invalid: list[str] = []
    body_lines = [ln for ln in body.splitlines() if ln.strip()]
    labelled = re.compile(
        "(?:" + "|".join(re.escape(_fold(lb)) for lb in cfg.labels) + ")", re.IGNORECASE
    )

    places: list[str] = [subject, *body_lines[: cfg.top_lines]]
    # Anywhere in the body after a label (the label's line and the next one,
    # for forms that put the value below the label).
    folded_lines = [_fold(ln) for ln in body_lines]
    for i, line in enumerate(folded_lines):
        m = labelled.search(line)
        if m:
            places.append(line[m.end() :])
            if i + 1 < len(folded_lines):
                places.append(folded_lines[i + 1])

    for place in places:
        for digits in _candidates(place, cfg):
            number = parse_support_number(digits, cfg)
            if number:
                return NumberSearch(number, tuple(invalid))
            if digits not in invalid:
                invalid.append(digits)
    return NumberSearch(None, tuple(invalid))
