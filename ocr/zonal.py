"""Zonal reading: the digit boxes and the 問合せ番号 box of our form, cut out and read as lines.

The twelve digit boxes are located from the form's registration marks
(``geometry.py``), their ruled lines taken away pixel by pixel (``_box_ink``:
a stroke drawn on a line or across it, and a large hand's digit reaching
past the box, stay with their digit; cutting the lines away with a margin
took the 7s' bars and the 3s' tops that lie on the top line, and made them
1s and 5s: ``bench/handwriting_diag.py``; a stroke beyond a line stays too
when the digit's way to it ran along a line, as a large 7's does from its
bar to the corner and down the side line; a 7's bar that a 98-dpi FAX
merged into the top line cannot be told from the line, so a digit meeting
the top line at the box's right part is also cut out with the line kept,
``BoxInk.bar``), the twelve digits set as one monospaced line and read by
Tesseract twice, with the digit whitelist and without it (``--psm 7``);
both reads must agree. Each box is also read on its own by PP-OCR
(``ppocr.py``; with a second opinion when unclear, and the 1/7 question
asked of the box with its line kept, ``box_digits.py``), which gives a
probability for every digit in every box: the evidence handwriting needs
(``decide.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from PIL import Image

from madoguchi.ocr._exec import tesseract
from madoguchi.ocr.box_digits import box_probabilities
from madoguchi.ocr.form import DEFAULT_LAYOUT, TICKET_BOX_MM, DigitLayout, Rect
from madoguchi.ocr.geometry import FormGeometry
from madoguchi.ocr.pages import Deadline
from madoguchi.ocr.preprocess import despeckle, dilate
from madoguchi.ocr.ticket_text import find_ticket_number
from madoguchi.ocr.verdict import MethodRead

# Parts of the form are cut out level at this many pixels per millimetre
# (254 dpi), fine enough to find the box lines; the digits are then scaled
# to the height Tesseract reads best (_DIGIT_HEIGHT_PX).
_CROP_PX_PER_MM = 10.0
# Share of a digit box's interior covered in ink: below is empty, above is a blot.
_BOX_EMPTY_INK = 0.012
_BOX_SMUDGED_INK = 0.42


class BoxStatus(Enum):
    """What the digit boxes of a form hold."""

    EMPTY = "empty"  # a blank form: nothing written in
    SMUDGED = "smudged"  # a box covered in ink
    INCOMPLETE = "incomplete"  # some boxes left empty
    READ = "read"  # twelve digits, read the same both ways
    UNCLEAR = "unclear"  # written in, but not twelve digits both reads agree on


@dataclass(frozen=True)
class ZonalRead:
    status: BoxStatus
    digits: str  # Tesseract's read of the boxes as one line
    confidence: float
    note: str = ""
    # The probability for each digit in each box (``box_digits.py``), left to right.
    probabilities: tuple[tuple[float, ...], ...] = ()

    @property
    def box_digits(self) -> str:
        """The likeliest digit in each box, by its probabilities."""
        return "".join(str(max(range(10), key=row.__getitem__)) for row in self.probabilities)


def _edge(profile: np.ndarray, expected: int, reach: int, min_share: float) -> int | None:
    lo, hi = max(0, expected - reach), min(len(profile), expected + reach + 1)
    if lo >= hi:
        return None
    best = lo + int(np.argmax(profile[lo:hi]))
    return best if profile[best] >= min_share else None


@dataclass(frozen=True)
class _Lines:
    """Where one box's four ruled lines are in a crop (pixel rows and columns of their middles)."""

    left: int
    right: int
    top: int
    bottom: int


def _box_lines(ink: np.ndarray, box: Rect, origin: Rect, r: float) -> _Lines:
    left, right = round((box.x0 - origin.x0) * r), round((box.x1 - origin.x0) * r)
    top, bottom = round((box.y0 - origin.y0) * r), round((box.y1 - origin.y0) * r)
    reach = round(1.2 * r)
    mid_rows = ink[top + reach : bottom - reach]
    mid_cols = ink[:, left + reach : right - reach]
    col_share = mid_rows.mean(axis=0) if mid_rows.size else np.zeros(ink.shape[1])
    row_share = mid_cols.mean(axis=1) if mid_cols.size else np.zeros(ink.shape[0])
    return _Lines(
        _edge(col_share, left, reach, 0.5) or left,
        _edge(col_share, right, reach, 0.5) or right,
        _edge(row_share, top, reach, 0.5) or top,
        _edge(row_share, bottom, reach, 0.5) or bottom,
    )


def _box_interior(ink: np.ndarray, lines: _Lines, r: float) -> np.ndarray:
    """The inside of one box, well clear of its ruled lines: how much ink the box holds."""
    margin = round(0.55 * r)
    inside = ink[lines.top + margin : lines.bottom - margin + 1,
                 lines.left + margin : lines.right - margin + 1].copy()
    if inside.size == 0:
        return inside
    # Stubs of a box line that was thicker or more tilted than the margin.
    edge = round(0.6 * r)
    for axis in (0, 1):
        share = inside.mean(axis=1 - axis)
        n = len(share)
        for i in [*range(min(edge, n)), *range(max(0, n - edge), n)]:
            if share[i] > 0.6:
                if axis == 0:
                    inside[i, :] = False
                else:
                    inside[:, i] = False
    return inside


# How far past the top and bottom box lines a large hand's digit may reach (a large
# 7's bar written above the box: 1.8 mm lost some, bench/handwriting_diag.py).
_OVERRUN_MM = 2.5
# The widest a ruled line is taken to be, each side of its middle (FAX blur included).
_LINE_HALF_MM = 0.5
# The widest gap across the rows of one digit (a line's width and the pen's lift).
_ROW_GAP_MM = 1.0
# How close to a digit a ruled line's pixels may bridge it to a stroke beyond the line.
_BRIDGE_MM = 0.6
# A digit meeting the top line right of this share of the box's width may have its bar
# on the line (a 7's corner): the box is also read with the line kept (``BoxInk.bar``).
_CORNER_SHARE = 0.6
# ... or meeting the right side line within this share of the box's height from the top.
_SIDE_SHARE = 0.4


def _grow(seed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The parts of ``mask`` connected (8 ways) to ``seed``."""
    grown: np.ndarray = seed & mask
    while True:
        wide = grown.copy()
        wide[1:] |= grown[:-1]
        wide[:-1] |= grown[1:]
        wide[:, 1:] |= wide[:, :-1].copy()
        wide[:, :-1] |= wide[:, 1:].copy()
        wide &= mask
        if np.array_equal(wide, grown):
            return grown
        grown = wide


def _clear_line(mask: np.ndarray, middle: int, r: float) -> tuple[int, int]:
    """Take a horizontal ruled line at row ``middle`` out of ``mask``, strokes on it kept.

    In each column the ink run through the line is the line alone when it
    is about as thick as the line is in most columns: then it goes. Where
    it is markedly thicker, a stroke lies on the line there (a 7's bar, a
    3's top) or crosses it, and the whole run stays. Returns the rows the
    line covers (first, last).
    """
    reach = round(0.3 * r)
    rows, cols = mask.shape
    runs: list[tuple[int, int] | None] = []
    for c in range(cols):
        column = mask[:, c]
        near = [y for y in range(max(0, middle - reach), min(rows, middle + reach + 1))
                if column[y]]
        if not near:
            runs.append(None)
            continue
        lo = hi = min(near, key=lambda y: abs(y - middle))
        while lo > 0 and column[lo - 1]:
            lo -= 1
        while hi < rows - 1 and column[hi + 1]:
            hi += 1
        runs.append((lo, hi))
    lengths = [hi - lo + 1 for run in runs if run for lo, hi in [run]]
    if len(lengths) < cols // 2:
        return middle, middle  # no line here to speak of
    thickness = float(np.percentile(lengths, 25))
    tolerance = max(2.0, 0.25 * r)
    plain = [run for run in runs if run and run[1] - run[0] + 1 <= thickness + tolerance]
    for c, run in enumerate(runs):
        if run and run[1] - run[0] + 1 <= thickness + tolerance:
            mask[run[0] : run[1] + 1, c] = False
    first = min((lo for lo, _ in plain), default=middle)
    last = max((hi for _, hi in plain), default=middle)
    return first, last


@dataclass(frozen=True)
class BoxInk:
    """One box's digit as ``_box_ink`` cuts it out, and its reading with the top line kept.

    ``bar`` is None unless the digit meets the top line in the box's right
    part, or the right side line in the box's upper part: then it is the
    digit with the top line's pixels between the side lines kept (and the
    side line's, down to where the digit meets it), as a 7 whose bar a
    standard-resolution FAX merged into the line was written
    (``box_digits.py`` asks about the 1/7 question only).
    """

    digit: np.ndarray
    bar: np.ndarray | None = None


def _box_ink_parts(ink: np.ndarray, lines: _Lines, r: float) -> BoxInk:
    """One box's digit, its strokes kept where they touch, cross or overrun the box lines.

    Only the ruled lines' own pixels are taken away (``_clear_line``);
    strokes that reach past the top or bottom line are followed out of the
    box, and any ink not connected to what is inside the box (the 記入例
    text, a neighbour's digit) is left out. The side lines are taken away
    between the top and bottom lines only: above the box a large 7's stroke
    from its bar to the corner is the line's width, not the line.
    """
    half = round(_LINE_HALF_MM * r)
    reach = round(_OVERRUN_MM * r)
    y0, y1 = max(0, lines.top - reach), min(ink.shape[0], lines.bottom + reach + 1)
    x0, x1 = max(0, lines.left - half), min(ink.shape[1], lines.right + half + 1)
    original = ink[y0:y1, x0:x1]
    mask = original.copy()
    if mask.size == 0:
        return BoxInk(mask)
    # Where the top and bottom lines lie (on a copy), then the side lines between them
    # (the mask turned on its side), then the top and bottom lines.
    probe = mask.copy()
    rows_from = _clear_line(probe, lines.top - y0, r)[0]
    rows_to = _clear_line(probe, lines.bottom - y0, r)[1] + 1
    sides = mask[rows_from:rows_to]
    core_left = _clear_line(sides.T, lines.left - x0, r)[1] + 1
    core_right = _clear_line(sides.T, lines.right - x0, r)[0]
    top_first, top_last = _clear_line(mask, lines.top - y0, r)
    core_top = top_last + 1
    core_bottom = _clear_line(mask, lines.bottom - y0, r)[0]
    seed = np.zeros_like(mask)
    seed[core_top:core_bottom, core_left:core_right] = True
    inside = _grow(seed, mask)
    # A stroke beyond a line is joined to its digit through the line where the digit
    # touches it: a large 7's bar above the top line, met at the box's corner.
    removed = original & ~mask
    bridge = removed & dilate(inside, round(_BRIDGE_MM * r))
    inside = _grow(inside, mask | bridge) & mask
    # A stroke lying on the top line from above is the digit's even where the way to
    # the rest of it ran along a line (a 7's bar and corner, the corner included).
    top = np.zeros_like(mask)
    top[:core_top] = True
    touching = dilate(removed & top, 1) & mask & top
    digit: np.ndarray = inside | _grow(touching, mask & top)
    # The top line's own pixels between the side lines, where the digit meets them at
    # the box's right part; and the right side line's down to where the digit meets it
    # in the box's upper part (a 7's stem drawn up along the side line to its corner).
    line = np.zeros_like(mask)
    line[top_first:core_top, core_left:core_right] = True
    line &= removed
    near = dilate(digit, 1)
    met = np.nonzero((near & line).any(axis=0))[0]
    corner = len(met) > 0 and met.max() >= core_left + _CORNER_SHARE * (core_right - core_left)
    side = np.zeros_like(mask)
    side[top_first : core_top + round(_SIDE_SHARE * (core_bottom - core_top)), core_right:] = True
    side &= removed
    side_met = np.nonzero((near & side).any(axis=1))[0]
    if not corner and len(side_met) == 0:
        return BoxInk(digit)
    bar = digit | line
    if len(side_met):
        side[side_met.max() + 1 :] = False
        bar |= side
    return BoxInk(digit, bar)


def _box_ink(ink: np.ndarray, lines: _Lines, r: float) -> np.ndarray:
    """One box's digit (``_box_ink_parts``), the box lines' own pixels taken away."""
    return _box_ink_parts(ink, lines, r).digit


def _main_span(profile: np.ndarray, max_gap: int) -> tuple[int, int] | None:
    """The stretch of a projection holding the most ink, gaps up to ``max_gap`` bridged."""
    idx = np.nonzero(profile)[0]
    if len(idx) == 0:
        return None
    breaks = np.nonzero(np.diff(idx) > max_gap + 1)[0]
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(idx) - 1]))
    best = max(range(len(starts)), key=lambda i: profile[idx[starts[i]] : idx[ends[i]] + 1].sum())
    return int(idx[starts[best]]), int(idx[ends[best]]) + 1


def _glyph(mask: np.ndarray, r: float) -> np.ndarray:
    """The digit in a box, cut tight; specks away from it left behind."""
    gap = max(2, round(0.6 * r))
    # Rows bridge a wider gap: a stroke kept above the top line (a 7's bar) lies a
    # line's width and more from the rest of its digit.
    rows = _main_span(mask.sum(axis=1), round(_ROW_GAP_MM * r))
    if rows is None:
        return mask[:0, :0]
    band = mask[rows[0] : rows[1]]
    cols = _main_span(band.sum(axis=0), gap)
    if cols is None:
        return mask[:0, :0]
    return band[:, cols[0] : cols[1]]


# Tesseract reads digits best at about this height in pixels (measured on
# the corpus: 20-24 px beat 28-40 px, with fewer 3/9 and 5/9 confusions).
DIGIT_HEIGHT_PX = 24


def _typeset(glyphs: list[np.ndarray]) -> Image.Image:
    """Set the boxes' digits as one line of monospaced text, scaled for Tesseract.

    Tesseract's line recogniser was trained on text, not on digits spread a
    box apart: far-apart digits come back doubled or split. Each digit gets
    a cell of equal width, bottoms on one baseline.
    """
    height = max(g.shape[0] for g in glyphs)
    cell = max(g.shape[1] for g in glyphs) + max(2, round(height * 0.2))
    border = max(10, height // 2)
    line = np.zeros((height + 2 * border, cell * len(glyphs) + 2 * border), dtype=bool)
    for i, glyph in enumerate(glyphs):
        x = border + i * cell + (cell - glyph.shape[1]) // 2
        y = border + height - glyph.shape[0]
        line[y : y + glyph.shape[0], x : x + glyph.shape[1]] = glyph
    image = Image.fromarray(np.where(line, 0, 255).astype(np.uint8))
    scale = DIGIT_HEIGHT_PX / height
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def despeckle_mask(mask: np.ndarray) -> np.ndarray:
    image = Image.fromarray(np.where(mask, 0, 255).astype(np.uint8))
    return np.asarray(despeckle(image)) < 128


@dataclass(frozen=True)
class BoxCell:
    """One digit box as cut out: its interior (how much ink it holds), and its digit."""

    interior: np.ndarray  # inside the lines, with a margin: for empty / smudged
    glyph: np.ndarray  # the digit cut tight, strokes over the box lines kept
    # The digit with the top line kept, cut tight, where it meets the line at the
    # box's right part (``BoxInk.bar``); None elsewhere.
    bar: np.ndarray | None = None


def box_cells(gray: Image.Image, geometry: FormGeometry,
              layout: DigitLayout = DEFAULT_LAYOUT) -> list[BoxCell]:
    """Each digit box of ``layout``: level, 10 px/mm, its ruled lines taken away."""
    strip_rect = _strip_rect(layout)
    strip = np.asarray(geometry.rectify(gray, strip_rect, _CROP_PX_PER_MM)) < 150
    return strip_cells(strip, layout)


def _strip_rect(layout: DigitLayout) -> Rect:
    pad = 2.0 + _OVERRUN_MM
    row = layout.row
    return Rect(row.x0 - pad, row.y0 - pad, row.x1 + pad, row.y1 + pad)


def strip_cells(strip: np.ndarray, layout: DigitLayout = DEFAULT_LAYOUT) -> list[BoxCell]:
    """The boxes of the digit row's ink (``box_cells``' strip, 10 px/mm, True = ink)."""
    r = _CROP_PX_PER_MM
    strip_rect = _strip_rect(layout)
    cells = []
    for box in layout.boxes:
        lines = _box_lines(strip, box, strip_rect, r)
        interior = despeckle_mask(_box_interior(strip, lines, r))
        parts = _box_ink_parts(strip, lines, r)
        ink = parts.digit
        glyph = _glyph(despeckle_mask(ink), r) if ink.size else ink
        bar = None if parts.bar is None else _glyph(despeckle_mask(parts.bar), r)
        cells.append(BoxCell(interior, glyph, bar))
    return cells


def box_interiors(gray: Image.Image, geometry: FormGeometry,
                  layout: DigitLayout = DEFAULT_LAYOUT) -> list[np.ndarray]:
    """The ink inside each digit box (``layout``'s), box lines cut away, level, 10 px/mm."""
    return [cell.interior for cell in box_cells(gray, geometry, layout)]


def box_glyph(interior: np.ndarray) -> np.ndarray:
    """The digit in one box's interior, cut tight."""
    return _glyph(interior, _CROP_PX_PER_MM)


def read_digit_boxes(gray: Image.Image, geometry: FormGeometry, deadline: Deadline,
                     layout: DigitLayout = DEFAULT_LAYOUT, *, luhn: bool = True) -> ZonalRead:
    """The digit boxes: what they hold, and the digits when they read clearly.

    ``luhn``: the number's last digit is a Luhn check digit (``box_digits``
    asks its second recogniser when PP-OCR's valid reading is not clear).
    """
    cells = box_cells(gray, geometry, layout)
    interiors = [cell.interior for cell in cells]
    shares = [float(i.mean()) if i.size else 0.0 for i in interiors]
    empty = [s < _BOX_EMPTY_INK for s in shares]
    smudged = [i + 1 for i, s in enumerate(shares) if s > _BOX_SMUDGED_INK]
    if all(empty):
        return ZonalRead(BoxStatus.EMPTY, "", 0.0)
    if smudged:
        return ZonalRead(
            BoxStatus.SMUDGED, "", 0.0, f"box {', '.join(map(str, smudged))} covered in ink"
        )
    if any(empty):
        blanks = [str(i + 1) for i, e in enumerate(empty) if e]
        return ZonalRead(BoxStatus.INCOMPLETE, "", 0.0, f"box {', '.join(blanks)} empty")

    glyphs = [cell.glyph for cell in cells]
    deadline.check("reading the digit boxes")
    bars = [cell.bar for cell in cells]
    probs = tuple(tuple(float(p) for p in row)
                  for row in box_probabilities(glyphs, luhn=luhn, bars=bars))
    image = _typeset(glyphs)
    read = two_reads(image, tesseract.DIGITS, 200, deadline, "the digit boxes")
    digits = "".join(ch for ch in read.constrained if ch.isdigit())
    if len(digits) != layout.count:
        note = f"read {len(digits)} digits, not {layout.count}"
        return ZonalRead(BoxStatus.UNCLEAR, digits, read.confidence, note, probs)
    if read.free != digits:
        note = f"unconstrained read gave {read.free!r}"
        return ZonalRead(BoxStatus.UNCLEAR, digits, read.confidence, note, probs)
    return ZonalRead(BoxStatus.READ, digits, read.confidence, "", probs)


@dataclass(frozen=True)
class TwoReads:
    constrained: str  # with the character whitelist
    free: str  # without it, spaces dropped
    confidence: float  # lowest character confidence of the free read, 0..1


def two_reads(
    image: Image.Image, whitelist: str, dpi: int, deadline: Deadline, what: str
) -> TwoReads:
    """Read a line twice: constrained to ``whitelist``, and free.

    Tesseract's confidences are only meaningful without a whitelist (see
    ``_exec/tesseract.py``), and a line that reads the same both ways is one
    whose characters did not need forcing into the allowed set.
    """
    lang, psm = tesseract.ENGLISH, tesseract.PSM_SINGLE_LINE
    free = tesseract.recognise(
        image, lang=lang, psm=psm, dpi=dpi, chars=True, timeout=ocr_timeout(deadline, what)
    )
    constrained = tesseract.recognise(
        image,
        lang=lang,
        psm=psm,
        dpi=dpi,
        whitelist=whitelist,
        timeout=ocr_timeout(deadline, what),
    )
    free_text = "".join(c.text for c in free.chars).replace(" ", "")
    confidence = min((c.conf for c in free.chars), default=0.0) / 100.0
    return TwoReads(constrained.text.replace(" ", ""), free_text, confidence)


def ocr_timeout(deadline: Deadline, what: str) -> float:
    """One Tesseract run's time: its own limit, or what is left of the document's."""
    return min(tesseract.DEFAULT_TIMEOUT, deadline.check(f"reading {what}"))


def read_ticket_box(
    gray: Image.Image, geometry: FormGeometry, prefix: str, page: int, deadline: Deadline
) -> MethodRead | None:
    """The 問合せ番号 box of the form on page ``page``; None when it is empty."""
    r = _CROP_PX_PER_MM
    inner = TICKET_BOX_MM.inset(0.8)
    crop = np.asarray(geometry.rectify(gray, inner, r)) < 150
    crop = despeckle_mask(crop)
    # Box lines that slipped inside the crop: full-length rows and columns.
    crop[crop.mean(axis=1) > 0.6, :] = False
    crop[:, crop.mean(axis=0) > 0.6] = False
    if crop.mean() < 0.005:
        return None
    rows = _main_span(crop.sum(axis=1), max(2, round(0.6 * r)))
    if rows is None:
        return None
    band = crop[rows[0] : rows[1]]
    height = band.shape[0]
    border = max(10, height // 2)
    canvas = np.zeros((height + 2 * border, band.shape[1] + 2 * border), dtype=bool)
    canvas[border : border + height, border : border + band.shape[1]] = band
    image = Image.fromarray(np.where(canvas, 0, 255).astype(np.uint8))
    scale = DIGIT_HEIGHT_PX / height
    image = image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
        Image.Resampling.LANCZOS,
    )
    read = two_reads(image, prefix + "-" + tesseract.DIGITS, 200, deadline, "the 問合せ番号 box")
    value = find_ticket_number(read.constrained, prefix)
    if value is not None and find_ticket_number(read.free, prefix) != value:
        value = None
    return MethodRead("zonal", "ticket_number", page, read.constrained, value, read.confidence)
