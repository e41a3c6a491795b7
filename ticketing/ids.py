"""A row id as typed in a URL or a form: ASCII digits within a 64-bit id, or nothing.

``str.isdigit`` also takes "²" or "١", which ``int`` refuses or reads; and
a number beyond 64 bits overflows the database's integer. Both mean "no such
row", never an error.
"""

from __future__ import annotations

import re

MAX_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_id(text: str) -> int | None:
    """The id ``text`` names (1 … 2^63 − 1), or None."""
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None
