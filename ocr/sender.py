"""Who sent a FAX, by the sending machine's own number: its header line, its TSI.

Every FAX machine prints a header line at the top of each page it sends
(date, time, its owner's name, its own FAX number, the page), and announces
its number to the receiver (the TSI), which HylaFAX keeps in the received
TIFF's ImageDescription. That number is usually a registered contact's FAX
number, so it identifies the customer even when the support number cannot
be read. This module only reads it; matching it to contacts is the
pipeline's (``ingest/steps/fax_sender.py``).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from madoguchi.ocr import ppocr
from madoguchi.ocr._exec import tesseract
from madoguchi.ocr.fulltext import AnalysedPage
from madoguchi.ocr.pages import Deadline
from madoguchi.ocr.preprocess import despeckle, to_gray
from madoguchi.ocr.zonal import ocr_timeout

# The header line stands in the top few millimetres (more when the machine
# adds it above the page): the top 4.5 % of the page is read for it.
HEADER_BAND = 0.045
# A Japanese FAX or phone number: 0 and 9-10 more digits, or +81 and 9-10.
_NUMBER = re.compile(
    r"(?<![\d])(?:\+\s?81[\s\-(]*|0)\d{1,4}[\s\-‐－)]{0,2}\d{1,4}[\s\-‐－]{0,2}\d{3,4}(?![\d])"
)
_DATE_OR_TIME = re.compile(r"\d{2,4}\s*[/年.]\s*\d{1,2}\s*[/月.]\s*\d{1,2}|\d{1,2}\s*:\s*\d{2}")


@dataclass(frozen=True)
class SenderFax:
    """The sending machine's number: its digits (national form, 0 first) and where it was read."""

    digits: str
    source: Literal["tsi", "header", "caller_id"]
    raw: str


def national_digits(text: str) -> str | None:
    """The first FAX/phone number in ``text`` as national digits (0312345678), or None."""
    folded = unicodedata.normalize("NFKC", text)
    folded = _DATE_OR_TIME.sub(" ", folded)
    for m in _NUMBER.finditer(folded):
        digits = "".join(ch for ch in m.group(0) if ch.isdigit())
        if m.group(0).lstrip().startswith("+"):
            digits = "0" + digits[2:]
        if 10 <= len(digits) <= 11 and digits.startswith("0"):
            return digits
    return None


def _from_page_ocr(page: AnalysedPage, height: int) -> str:
    """The words of the page's OCR in its top band (none when no OCR was made)."""
    if page.ocr is None:
        return ""
    words = [w for w in page.ocr.words if w.top + w.height / 2 < HEADER_BAND * height]
    return " ".join(w.text for w in words)


def _band_reads(image: Image.Image, levelled: Image.Image | None, deadline: Deadline) -> list[str]:
    """The page's top band read on its own, by Tesseract (English, enlarged 3×) and PP-OCR.

    A FAX machine prints its header in a small face; page layout analysis
    often skips it, and it reads best enlarged.
    """
    source = to_gray(levelled or image)
    band = source.crop((0, 0, source.width, round(HEADER_BAND * source.height)))
    dpi = round(float(image.info.get("dpi", (204, 204))[0]))
    big = band.resize((band.width * 3, band.height * 3), Image.Resampling.LANCZOS)
    tesseract_read = tesseract.recognise(
        big,
        lang=tesseract.ENGLISH,
        psm=tesseract.PSM_BLOCK,
        dpi=dpi * 3,
        timeout=ocr_timeout(deadline, "the header line"),
    ).text
    # A second model: PP-OCR's recogniser, on the band's first line of text.
    texts = [tesseract_read]
    line = _first_line(np.asarray(despeckle(band)))
    if line is not None:
        texts += ppocr.read_lines([line])
    return texts


def _first_line(grey: np.ndarray) -> np.ndarray | None:
    """The top-most line of text in a band (rows inked across 1 % of the width), with a margin."""
    rows = (grey < 128).sum(axis=1) > 0.01 * grey.shape[1]
    start = None
    for y, inked in enumerate([*rows.tolist(), False]):
        if inked and start is None:
            start = y
        elif not inked and start is not None:
            if y - start >= 8:
                top, bottom = max(0, start - 4), min(grey.shape[0], y + 4)
                cols = np.nonzero((grey[top:bottom] < 128).any(axis=0))[0]
                return grey[top:bottom, max(0, cols[0] - 8) : cols[-1] + 9]
            start = None
    return None


def sender_fax(
    pages: list[AnalysedPage], images: list[Image.Image], deadline: Deadline
) -> SenderFax | None:
    """The sending machine's number: its TSI when the file kept one, else its header line.

    The header line is read three times (in the page's OCR, and its band
    alone by Tesseract and by PP-OCR); a number counts when two reads agree.
    """
    for image in images:
        tsi = image.info.get("fax_tsi")
        if isinstance(tsi, str) and (digits := national_digits(tsi)):
            return SenderFax(digits, "tsi", tsi)
    for page, image in zip(pages, images, strict=True):
        if page.blank:
            continue
        texts = [_from_page_ocr(page, image.height), *_band_reads(image, page.levelled, deadline)]
        votes = Counter(d for d in map(national_digits, texts) if d)
        if votes:
            digits, count = votes.most_common(1)[0]
            if count >= 2:  # two reads of the header agree: a misread rarely repeats
                raw = next(t for t in texts if national_digits(t) == digits)
                return SenderFax(digits, "header", raw.strip()[:120])
        break  # the first page's header says it; later pages repeat it
    return None
