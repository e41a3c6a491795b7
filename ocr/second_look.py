"""The second look: every place a number may stand read again, ten ways, and a vote.

When the first look accepts nothing (full-page OCR misreads digits whose
thin strokes a standard-resolution FAX broke, or garbles the label), every
place a number may stand is read again, prepared ten ways, and a number is
accepted only when enough of those reads agree on it and none saw another.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from madoguchi.config import SupportNumberSettings
from madoguchi.ocr._exec import tesseract
from madoguchi.ocr._exec.tesseract_output import OcrResult, Word
from madoguchi.ocr.fulltext import (
    AnalysedPage,
    canonical_labels,
    full_text,
    mask_not_the_number,
    masked_away,
    page_dpi,
    search_line_words,
)
from madoguchi.ocr.pages import Deadline
from madoguchi.ocr.preprocess import close_vertically, to_gray
from madoguchi.ocr.ticket_text import DASHES
from madoguchi.ocr.verdict import Accepted, MethodRead, Verdict
from madoguchi.ocr.zonal import ocr_timeout
from madoguchi.ticketing.support_number import parse_support_number

# Reads of one spot (out of len(_SECOND_LOOK_HEIGHTS) × 5 images) that must
# give the same valid number, whitelisted and free read agreeing.
SECOND_LOOK_MIN_AGREE = 3
# Digit heights (px) the spot is set at; 24 reads broken strokes best, 32
# the digits 24 blurs together.
_SECOND_LOOK_HEIGHTS = (24, 32)
# At most this many places a number may stand are read again per document.
_SECOND_LOOK_MAX_SPOTS = 8
# Letters full-page OCR puts for digits, and what it puts between groups.
_LOOKALIKES = frozenset("OoDIl|SBZbgq")
_RUN_SEPARATORS = frozenset(DASHES) | frozenset(" .,:・")


@dataclass(frozen=True)
class _Spot:
    """A run of about the number's count of digits in a line of page OCR."""

    page: AnalysedPage
    line: int  # index among the page's search lines
    box: tuple[int, int, int, int]  # the run: left, top, right, bottom
    line_box: tuple[int, int, int, int]
    text: str  # the line as OCR read it
    previous: str  # the line above it
    real_digits: int  # characters of the run that are digits (not look-alikes)


def _union(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _spots(page: AnalysedPage, ocr: OcrResult, count: int) -> list[_Spot]:
    """Runs of ``count`` ± 1 digits (look-alike letters, odd separators allowed) on a page."""
    assert page.levelled is not None
    lines = search_line_words(ocr, page.levelled.height)
    found: list[_Spot] = []
    for index, (text, words) in enumerate(lines):
        chars = [c for w in words for c in w.chars]
        folded = [unicodedata.normalize("NFKC", c.text) for c in chars]
        # A number a word marks as another (記入例, シリアル, TEL...) is no spot.
        masked = mask_not_the_number("".join((f or " ")[0] for f in folded))
        i = 0
        while i < len(chars):
            if masked[i] == " " and folded[i].strip():
                i += 1
                continue
            if not (folded[i].isdigit() or folded[i] in _LOOKALIKES):
                i += 1
                continue
            j, last, real, alike = i, i, 0, 0
            while j < len(chars) and (
                folded[j].isdigit() or folded[j] in _LOOKALIKES or folded[j] in _RUN_SEPARATORS
            ):
                if folded[j].isdigit():
                    real, last = real + 1, j
                elif folded[j] in _LOOKALIKES:
                    alike, last = alike + 1, j
                j += 1
            boxes = [chars[k].box for k in range(i, last + 1)]
            if (
                abs(real + alike - count) <= 1
                and real >= count - 3
                and all(b[2] > b[0] and b[3] > b[1] for b in boxes)
            ):
                found.append(
                    _Spot(
                        page=page,
                        line=index,
                        box=_union(boxes),
                        line_box=_union(
                            [(w.left, w.top, w.left + w.width, w.top + w.height) for w in words]
                        ),
                        text=text,
                        previous=lines[index - 1][0] if index else "",
                        real_digits=real,
                    )
                )
            i = j
    return found


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w > 0 and h > 0 and w * h > 0.5 * smaller


def _label_pattern(cfg: SupportNumberSettings) -> re.Pattern[str]:
    return re.compile(
        "|".join(re.escape(unicodedata.normalize("NFKC", label)) for label in cfg.labels),
        re.IGNORECASE,
    )


def _labelled(text: str, cfg: SupportNumberSettings, digits_after: int) -> bool:
    """Whether ``text`` carries a label (OCR slips undone) with digits after it."""
    line = unicodedata.normalize("NFKC", canonical_labels(text, cfg))
    m = _label_pattern(cfg).search(line)
    return m is not None and sum(ch.isdigit() for ch in line[m.end() :]) >= digits_after


def _spot_images(gray: Image.Image, box: tuple[int, int, int, int]) -> list[Image.Image]:
    """The spot prepared five ways, each at every height of ``_SECOND_LOOK_HEIGHTS``.

    As sent, closed down the columns (strokes broken between scan lines
    rejoined), and blurred then thresholded three ways (thin strokes made
    thicker, gaps bridged). No one way reads every FAX best: each fixes
    what another breaks, so they vote.
    """
    left, top, right, bottom = box
    h = max(1, bottom - top)
    crop = gray.crop((left - h // 2 - 2, top - h // 3 - 2, right + h // 2 + 2, bottom + h // 3 + 2))
    ink = np.asarray(crop) < 128
    blurred = np.asarray(crop.filter(ImageFilter.GaussianBlur(1.2)))
    lightly = np.asarray(crop.filter(ImageFilter.GaussianBlur(0.8)))
    masks = [ink, close_vertically(ink, 3), blurred < 170, blurred < 200, lightly < 160]
    images = []
    for height in _SECOND_LOOK_HEIGHTS:
        scale = height / h
        size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
        for mask in masks:
            image = Image.fromarray(np.where(mask, 0, 255).astype(np.uint8))
            images.append(image.resize(size, Image.Resampling.LANCZOS))
    return images


def _sheet(images: list[Image.Image], gap: int = 20) -> tuple[Image.Image, list[tuple[int, int]]]:
    """The images one below the other on white, and the rows each one covers.

    One Tesseract run reads them all as a block of lines: a tenth of the
    cost of one run per image, and each line is still read on its own.
    """
    width = max(im.width for im in images) + 2 * gap
    height = sum(im.height for im in images) + gap * (len(images) + 1)
    sheet = Image.new("L", (width, height), 255)
    rows: list[tuple[int, int]] = []
    y = gap
    for im in images:
        sheet.paste(im, (gap, y))
        rows.append((y, y + im.height))
        y += im.height + gap
    return sheet, rows


@dataclass(frozen=True)
class _Vote:
    reads: tuple[tuple[str, str, float], ...]  # (whitelisted, free, lowest char confidence)

    def digits(self, i: int) -> str:
        return "".join(ch for ch in self.reads[i][0] if ch.isdigit())

    def agreeing(self, digits: str) -> list[int]:
        """The images whose whitelisted and free reads both spell ``digits``."""
        return [
            i
            for i, (_, free, _) in enumerate(self.reads)
            if self.digits(i) == digits and "".join(ch for ch in free if ch.isdigit()) == digits
        ]

    def valid_numbers(self, cfg: SupportNumberSettings) -> set[str]:
        """Every valid number any read, whitelisted or free, spelled."""
        spelled = {self.digits(i) for i in range(len(self.reads))}
        spelled |= {"".join(ch for ch in free if ch.isdigit()) for _, free, _ in self.reads}
        return {d for d in spelled if parse_support_number(d, cfg) is not None}


def _vote(page: AnalysedPage, spot: _Spot, deadline: Deadline) -> _Vote:
    assert page.levelled is not None
    sheet, rows = _sheet(_spot_images(to_gray(page.levelled), spot.box))
    lang, psm, dpi = tesseract.ENGLISH, tesseract.PSM_BLOCK, 200
    what = "a number on the page a second time"
    constrained = tesseract.recognise(
        sheet,
        lang=lang,
        psm=psm,
        dpi=dpi,
        whitelist=tesseract.DIGITS + "-",
        timeout=ocr_timeout(deadline, what),
    )
    free = tesseract.recognise(
        sheet, lang=lang, psm=psm, dpi=dpi, chars=True, timeout=ocr_timeout(deadline, what)
    )

    def within(words: tuple[Word, ...], top: int, bottom: int) -> list[Word]:
        return [w for w in words if top - 5 <= w.top + w.height / 2 <= bottom + 5]

    reads = []
    for top, bottom in rows:
        free_words = within(free.words, top, bottom)
        confs = [c.conf for w in free_words for c in w.chars if c.text.strip()]
        reads.append(
            (
                "".join(w.text for w in within(constrained.words, top, bottom)),
                "".join(w.text for w in free_words),
                min(confs, default=0.0) / 100.0,
            )
        )
    return _Vote(tuple(reads))


def second_look(
    pages: list[AnalysedPage],
    cfg: SupportNumberSettings,
    deadline: Deadline,
    seen_valid: frozenset[str],
) -> Verdict[Accepted]:
    """Read every place a number may stand again, ten ways, and let the reads vote.

    The places are runs of about twelve digits in the page OCR (letters
    OCR puts for digits, and any separators, allowed) where the email path
    would look: in the top lines, or after a label; a label OCR garbled in
    the page read is looked for again in a read of its line alone. Each
    place is read in ten images (``_spot_images``); a number wins the place
    when it passes its check digit and at least SECOND_LOOK_MIN_AGREE images
    read it the same with and without the digit whitelist, and no read of
    the place, nor any read of the first look (``seen_valid``), saw another
    valid number. The document's number is the one the places agree on;
    when two valid numbers were seen anywhere, the FAX goes to triage.

    The verdict holds the accepted number, or the problem that the reads
    saw different valid numbers, or neither: nothing found.
    """
    count = sum(cfg.display_groups)
    winners: dict[str, float] = {}
    conflicts: set[str] = set()
    reads: list[MethodRead] = []
    examined = 0
    for spot in _all_spots(pages, count, deadline):
        place = _place(spot, cfg, count, deadline)
        if place is None:
            continue
        if examined == _SECOND_LOOK_MAX_SPOTS:
            break
        examined += 1
        tally = _tally(_vote(spot.page, spot, deadline), cfg, seen_valid)
        if tally.best is not None and masked_away(spot.page.ocr, tally.best):
            tally = _Tally(tally.raw, None, 0.0, f"{tally.best} is marked as another number")
        reads.append(
            MethodRead(
                "fullpage",
                "support_number",
                spot.page.number,
                tally.raw,
                tally.best,
                tally.confidence if tally.best else 0.0,
                f"second look, {place}: {tally.note}",
            )
        )
        conflicts |= tally.conflicts
        if tally.best is not None:
            winners[tally.best] = max(winners.get(tally.best, 0.0), tally.confidence)
    if len(winners | dict.fromkeys(conflicts, 0.0)) > 1:
        seen = ", ".join(sorted(set(winners) | conflicts))
        problem = f"second look: reads saw different valid numbers: {seen}"
        return Verdict(None, tuple(reads), (problem,))
    if not winners:
        return Verdict(None, tuple(reads))
    digits, confidence = winners.popitem()
    number = parse_support_number(digits, cfg)
    assert number is not None
    return Verdict(Accepted(number, "fullpage", confidence), tuple(reads))


def _all_spots(pages: list[AnalysedPage], count: int, deadline: Deadline) -> list[_Spot]:
    """Every page's spots, in the Japanese read and then the English one, each place once."""
    spots: list[_Spot] = []
    for page in pages:
        if page.blank or page.levelled is None:
            continue
        full_text(page, deadline)
        for ocr in (page.ocr, page.english):
            if ocr is None:
                continue
            for spot in _spots(page, ocr, count):
                if not any(s.page is page and _overlaps(s.box, spot.box) for s in spots):
                    spots.append(spot)
    return spots


def _place(spot: _Spot, cfg: SupportNumberSettings, count: int, deadline: Deadline) -> str | None:
    """Where the spot stands, when it is a place the email path would look; else None."""
    if spot.line < cfg.top_lines:
        return "top of the page"
    if _labelled(spot.text, cfg, count - 3) or _labelled(spot.previous, cfg, 0):
        return "after its label"
    if spot.real_digits >= count - 1 and _labelled(
        _line_again(spot.page, spot.line_box, deadline), cfg, count - 3
    ):
        return "after its label (read again)"
    return None


@dataclass(frozen=True)
class _Tally:
    """One spot's vote counted."""

    raw: str  # the whitelisted read most images gave
    best: str | None  # the number the spot gives, or None
    confidence: float
    note: str
    conflicts: frozenset[str] = frozenset()  # valid numbers seen beside one another


def _tally(vote: _Vote, cfg: SupportNumberSettings, seen_valid: frozenset[str]) -> _Tally:
    valid = vote.valid_numbers(cfg)
    tally = {d: vote.agreeing(d) for d in valid}
    best = max(tally, key=lambda d: len(tally[d]), default=None)
    agree = tally[best] if best else []
    raw = max(
        (vote.reads[i][0] for i in range(len(vote.reads))),
        key=lambda r: sum(v[0] == r for v in vote.reads),
    )
    confidence = float(np.median([vote.reads[i][2] for i in agree])) if agree else 0.0
    if best is None or len(agree) < SECOND_LOOK_MIN_AGREE:
        note = "no valid number read the same by enough of the images"
        return _Tally(raw, None, confidence, note)
    if len(valid) > 1 or (seen_valid - {best}):
        others = sorted((valid | seen_valid) - {best})
        note = f"{best} read, but also {', '.join(others)}"
        return _Tally(raw, None, confidence, note, frozenset({best, *others}))
    return _Tally(raw, best, confidence, f"{len(agree)} of {len(vote.reads)} images agree")


def _line_again(page: AnalysedPage, line_box: tuple[int, int, int, int], deadline: Deadline) -> str:
    """One line of the page read on its own (Japanese): a label the page read garbled."""
    assert page.levelled is not None
    left, top, right, bottom = line_box
    h = max(1, bottom - top)
    crop = to_gray(page.levelled).crop(
        (max(0, left - h), max(0, top - h // 2), right + h, bottom + h // 2)
    )
    return tesseract.recognise(
        crop,
        lang=tesseract.JAPANESE_ONLY,
        psm=tesseract.PSM_SINGLE_LINE,
        dpi=page_dpi(page.levelled),
        timeout=ocr_timeout(deadline, "a line again"),
    ).text
