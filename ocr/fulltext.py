"""Full-page OCR of a FAX page, and the search for the number in its lines.

Japanese OCR of the whole page (``jpn+eng``) is the message text anyway;
the search over its lines is the one the email path uses (the number at the
top, or after its label), with the OCR slips at separators and labels
undone. A number found is read a second time from its own spot on the page
(``reread``).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from madoguchi.config import SupportNumberSettings
from madoguchi.ocr._exec import tesseract
from madoguchi.ocr._exec.tesseract_output import OcrResult, Word, line_text
from madoguchi.ocr.geometry import FormGeometry
from madoguchi.ocr.pages import Deadline
from madoguchi.ocr.preprocess import deskew, despeckle, rotate, to_gray
from madoguchi.ocr.qr import QrRead
from madoguchi.ocr.ticket_text import DASHES
from madoguchi.ocr.zonal import DIGIT_HEIGHT_PX, TwoReads, ZonalRead, ocr_timeout, two_reads
from madoguchi.ticketing.support_number import (
    SupportNumber,
    find_support_number,
)


@dataclass
class AnalysedPage:
    """One page as the reader saw it; the page images and OCR reads are made once, kept here."""

    number: int
    blank: bool
    geometry: FormGeometry | None = None
    qr: list[QrRead] = field(default_factory=list)
    zonal: ZonalRead | None = None
    levelled: Image.Image | None = None
    cleaned: Image.Image | None = None
    ocr: OcrResult | None = None
    english: OcrResult | None = None  # the English page read, when one was made
    gray: Image.Image | None = None  # the page as loaded (the form's geometry maps onto it)


def level(page: AnalysedPage, gray: Image.Image, ink: np.ndarray) -> Image.Image:
    """The page turned level: by the form's marks when it is our form, else by its lines."""
    if page.geometry is not None:
        return rotate(gray, -page.geometry.angle)
    return deskew(gray, ink)[0]


def cleaned(page: AnalysedPage) -> Image.Image:
    """The levelled page for full-page OCR, specks gone."""
    if page.cleaned is None:
        assert page.levelled is not None
        page.cleaned = despeckle(page.levelled)
    return page.cleaned


def full_text(page: AnalysedPage, deadline: Deadline) -> OcrResult:
    """The page's Japanese full-page OCR, made on first use."""
    if page.ocr is None:
        assert page.levelled is not None
        page.ocr = tesseract.recognise(
            cleaned(page),
            lang=tesseract.JAPANESE,
            psm=tesseract.PSM_AUTO,
            chars=True,
            dpi=page_dpi(page.levelled),
            timeout=min(tesseract.DEFAULT_TIMEOUT * 2, deadline.check("OCR of a page")),
        )
    return page.ocr


# What the text of a request form says (ours, or one printed from it unreadably
# for the marks): its title, its form ID, its example. Full-page OCR of a 98-dpi
# page reads them loosely, hence the parts.
_FORM_WORDS = re.compile(r"FAX\s*お問.{0,3}合わせ用紙|問い合わせ用紙|MDG-FAX|記入例|\(必須\)")


def is_form_page(page: AnalysedPage, deadline: Deadline) -> bool:
    """Is the page a request form, whose number may only come from its boxes?

    Ours when its registration marks were found; else when its text says so.
    """
    if page.geometry is not None:
        return True
    if page.blank or page.levelled is None:
        return False
    text = unicodedata.normalize("NFKC", full_text(page, deadline).text)
    return _FORM_WORDS.search("".join(text.split())) is not None


def page_dpi(image: Image.Image) -> int:
    dpi = image.info.get("dpi")
    if isinstance(dpi, tuple) and dpi and float(dpi[0]) > 0:
        return round(float(dpi[0]))
    return round(image.width / 8.5)


def digits_confidence(ocr: OcrResult, digits: str) -> float:
    """Confidence of the words on the line where ``digits`` were found."""
    for words in ocr.lines():
        folded = [unicodedata.normalize("NFKC", w.text) for w in words]
        line_digits = "".join(ch for t in folded for ch in t if ch.isdigit())
        if digits in line_digits:
            confs = [
                w.conf for w, t in zip(words, folded, strict=True) if any(c.isdigit() for c in t)
            ]
            return min(confs, default=0.0) / 100.0
    return 0.0


@dataclass(frozen=True)
class TextSearch:
    number: SupportNumber | None
    invalid: tuple[str, ...]
    confidence: float


# The sending machine prints its header line in the top few millimetres.
_HEADER_BAND = 0.035
_SEPARATOR_RUN = re.compile(r"(?<=\d)[\s" + re.escape(DASHES) + r"]{2,}(?=\d)")


def canonical_labels(line: str, cfg: SupportNumberSettings) -> str:
    """Put back a label OCR garbled (サポボート番号, サービオ番号, 番呈) so the search finds it."""
    best: tuple[float, int, int, str] | None = None
    for label in cfg.labels:
        n = len(label)
        for size in range(max(2, n - 2), n + 2):
            for start in range(0, max(1, len(line) - size + 1)):
                ratio = difflib.SequenceMatcher(None, line[start : start + size], label).ratio()
                if ratio >= 0.7 and (best is None or ratio > best[0]):
                    best = (ratio, start, start + size, label)
    if best is None:
        return line
    _, start, end, label = best
    return line[:start] + label + line[end:]


_TIME = re.compile(r"\d{1,2}\s*[:：.]\s*\d{2}")
_PAGE_MARK = re.compile(r"P\s*[.,]?\s*\d{1,3}\s*[/(<]?")

# Words that say the number after them is not the customer's support number:
# the form's example (記入例), a product serial, a phone or FAX number, an order.
# OCR reads them fuzzily, so a few look-alikes are listed as well.
NOT_THE_NUMBER = re.compile(
    r"(記入例|記入倒|記人例|例|見本|サンプル|シリアル|S\s*/\s*N|Serial|製造番号|製品番号|"
    r"ライセンスキー|TEL|Tel|電話|FAX|Fax|ＦＡＸ|携帯|注文|受注|伝票|請求|郵便|〒)"
)
# How far after such a word its number may start (a colon, a bracket, spaces).
_NOT_REACH = 6
_NUMBERISH = re.compile(
    r"[0-9OoDIl|SBZ](?:[" + re.escape(DASHES) + r"\s.,:・]?[0-9OoDIl|SBZ])*"
)


def mask_not_the_number(line: str) -> str:
    """``line`` with every number that a word marks as not ours (記入例, TEL, ...) blanked.

    The blanked characters become spaces, so positions in the line are kept.
    """
    out = list(line)
    for m in NOT_THE_NUMBER.finditer(line):
        start = m.end()
        run = _NUMBERISH.search(line, start, start + _NOT_REACH + 40)
        if run is None or run.start() - start > _NOT_REACH:
            continue
        for i in range(run.start(), run.end()):
            out[i] = " "
    return "".join(out)


def masked_away(ocr: OcrResult | None, digits: str) -> bool:
    """Does a line of ``ocr`` hold ``digits`` only where a word marks them as another number?

    The English read of a page cannot read 記入例 or シリアル; the Japanese
    read of the same page can, and its word counts for every read.
    """
    if ocr is None:
        return False
    for words in ocr.lines():
        line = unicodedata.normalize("NFKC", line_text(words))
        raw = "".join(ch for ch in line if ch.isdigit())
        if digits in raw and digits not in "".join(
            ch for ch in mask_not_the_number(line) if ch.isdigit()
        ):
            return True
    return False


def search_line_words(ocr: OcrResult, page_height: int) -> list[tuple[str, tuple[Word, ...]]]:
    """The page's lines without the sending machine's header, OCR slips at separators undone.

    Each line comes with the words it was made of, for where it is on the page.
    """
    lines: list[tuple[str, tuple[Word, ...]]] = []
    for words in ocr.lines():
        # Word by word: Tesseract sometimes runs the header into the line below.
        kept = tuple(w for w in words if w.top + w.height / 2 >= _HEADER_BAND * page_height)
        if not kept:
            continue
        line = unicodedata.normalize("NFKC", line_text(kept))
        if (
            not lines
            and kept[0].top < 0.08 * page_height
            and _TIME.search(line)
            and (_PAGE_MARK.search(line) or "FAX" in line.upper())
        ):
            continue  # a header printed a little lower than usual
        lines.append((_SEPARATOR_RUN.sub("-", mask_not_the_number(line)), kept))
    return lines


def _search_lines(ocr: OcrResult, page_height: int) -> list[str]:
    return [line for line, _ in search_line_words(ocr, page_height)]


def search_ocr(ocr: OcrResult, page_height: int, cfg: SupportNumberSettings) -> TextSearch:
    """The email path's search over OCR lines: at the top of the page, or after its label.

    A number that a word marks as another number (記入例, シリアル, TEL, ...)
    was blanked from its line (``mask_not_the_number``); a number standing
    anywhere else on the page, even in the number's printed form, is never
    taken: it may be a serial, an order or the form's example.
    """
    lines = _search_lines(ocr, page_height)
    search = find_support_number("", "\n".join(canonical_labels(ln, cfg) for ln in lines), cfg)
    confidence = digits_confidence(ocr, search.number.digits) if search.number else 0.0
    return TextSearch(search.number, search.invalid, confidence)


def _line_with(ocr: OcrResult, digits: str) -> tuple[Word, ...] | None:
    for words in ocr.lines():
        text = unicodedata.normalize("NFKC", "".join(w.text for w in words))
        if digits in "".join(ch for ch in text if ch.isdigit()):
            return words
    return None


def _digit_run_box(words: tuple[Word, ...], digits: str) -> tuple[int, int, int, int] | None:
    """Where on the page the characters spelling ``digits`` (separators allowed) are."""
    chars = [c for w in words for c in w.chars]
    folded = [unicodedata.normalize("NFKC", c.text) for c in chars]
    for start, first in enumerate(folded):
        if not first.isdigit():
            continue
        got, end = "", start
        for j in range(start, len(chars)):
            t = folded[j]
            if t.isdigit():
                got += t
            elif not (t.isspace() or (t and t in DASHES)):
                break
            end = j
            if len(got) >= len(digits):
                break
        if got == digits:
            boxes = [chars[k].box for k in range(start, end + 1)]
            return (
                min(b[0] for b in boxes),
                min(b[1] for b in boxes),
                max(b[2] for b in boxes),
                max(b[3] for b in boxes),
            )
    return None


def reread(
    image: Image.Image,
    ocr: OcrResult,
    digits: str,
    whitelist: str,
    deadline: Deadline,
) -> TwoReads | None:
    """Read the characters that spelled ``digits`` again, as a digit line (English model).

    Full-page Japanese OCR confuses 0, 6 and 9 in small print; the line
    recogniser that reads the digit boxes is a second, independent read.
    """
    line = _line_with(ocr, digits)
    box = _digit_run_box(line, digits) if line else None
    if box is None:
        return None
    left, top, right, bottom = box
    h = max(1, bottom - top)
    crop = to_gray(image).crop(
        (left - h // 2 - 2, top - h // 3 - 2, right + h // 2 + 2, bottom + h // 3 + 2)
    )
    scale = DIGIT_HEIGHT_PX / h
    crop = crop.resize(
        (max(1, round(crop.width * scale)), max(1, round(crop.height * scale))),
        Image.Resampling.LANCZOS,
    )
    return two_reads(crop, whitelist, 200, deadline, "a number on the page again")


@dataclass(frozen=True)
class PageSearch:
    """The search over one page's text: what it found, in which read, by which model."""

    found: TextSearch
    source: OcrResult
    model: str  # "jpn+eng", or "eng" when the Japanese read found no number


def search_page(page: AnalysedPage, cfg: SupportNumberSettings, deadline: Deadline) -> PageSearch:
    """The page's full-page OCR searched; an English-only read searched when it finds nothing.

    Digits read better without the kanji model. The English read is kept on
    the page for the second look.
    """
    assert page.levelled is not None
    height = page.levelled.height
    source = full_text(page, deadline)
    found = search_ocr(source, height, cfg)
    if found.number is not None or found.invalid:
        return PageSearch(found, source, "jpn+eng")
    source = tesseract.recognise(
        cleaned(page),
        lang=tesseract.ENGLISH,
        psm=tesseract.PSM_BLOCK,
        dpi=page_dpi(page.levelled),
        chars=True,
        timeout=ocr_timeout(deadline, "a page in English"),
    )
    page.english = source
    found = search_ocr(source, height, cfg)
    if found.number is not None and masked_away(page.ocr, found.number.digits):
        found = TextSearch(None, (), 0.0)
    return PageSearch(found, source, "eng")
