"""``N_``: marks a Japanese label for the web desk's translation catalogue, changing nothing.

Rules and desk actions stay in Japanese and free of any language machinery;
the web desk (``web.i18n``) translates a marked label where it shows it.
"""

from __future__ import annotations


def N_(message: str) -> str:
    return message
