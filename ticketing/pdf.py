"""The desk's PDF pages: A4, and the fonts that write Japanese (FAX replies, the FAX form).

reportlab embeds TrueType (glyf) fonts only, so the CFF-based Noto CJK
collection will not do; IPA fonts are TrueType.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

PAGE_W_MM = 210.0
PAGE_H_MM = 297.0

_JAPANESE_FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/truetype/ipafont-gothic/ipag.ttf",
)
_MONO_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
)
JAPANESE_FONT = "MadoguchiGothic"
DIGIT_FONT = "MadoguchiMono"


def _first_existing(paths: Sequence[str], what: str) -> str:
    for path in paths:
        if os.path.exists(path):
            return path
    raise FileNotFoundError(
        f"no {what} font found (tried {', '.join(paths)}); install fonts-ipafont / fonts-dejavu"
    )


def register_fonts() -> None:
    """Register the desk's fonts with reportlab once per process."""
    registered = pdfmetrics.getRegisteredFontNames()
    if JAPANESE_FONT not in registered:
        path = _first_existing(_JAPANESE_FONT_CANDIDATES, "Japanese TrueType")
        pdfmetrics.registerFont(TTFont(JAPANESE_FONT, path))
    if DIGIT_FONT not in registered:
        path = _first_existing(_MONO_FONT_CANDIDATES, "monospaced TrueType")
        pdfmetrics.registerFont(TTFont(DIGIT_FONT, path))
