"""The kana reading of a name (山田 → ヤマダ), so that staff find a caller by how it sounds.

pykakasi's dictionary ships in its wheel. A reading is a guess (names have
several readings); the lookup also matches the written name, so a wrong
guess only costs the kana search of that one name.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _kakasi() -> Any:
    import pykakasi  # loads its dictionary: only when a reading is first needed

    return pykakasi.kakasi()  # type: ignore[no-untyped-call]


def reading(name: str) -> str:
    """The katakana reading of ``name``; "" when it has no kanji or kana."""
    if not name or name.isascii():
        return ""
    return "".join(part["kana"] for part in _kakasi().convert(name))
