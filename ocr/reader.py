"""Reading the support service number, and a follow-up's 問合せ番号, off FAX pages.

Three ways to read the number, strongest first:

* ``qr``: the code on a form we pre-printed (zxing-cpp).
* ``zonal``: the twelve digit boxes of our form, located from the form's
  registration marks (an affine fit, so skew and scaling do not matter), box
  lines cut away, the twelve digits set as one monospaced line and read by
  Tesseract twice, with the digit whitelist and without it (``--psm 7``);
  both reads must agree.
* ``fullpage``: Japanese OCR of the whole page (``jpn+eng``), then the same
  search the email path uses (the number at the top, or after its label);
  the digits found are read a second time from their own spot on the page
  with the English model, and must not read differently. When that first
  look accepts nothing (full-page OCR misreads digits whose thin strokes a
  standard-resolution FAX broke, or garbles the label), a second look reads
  every place a number may stand again, prepared ten ways, and accepts a
  number only when enough of those reads agree on it and none saw another.

Nothing is guessed. A number is accepted only when its check digit holds and,
when a code and printed digits were both read, when they agree; a form whose
boxes hold something unreadable is not second-guessed by full-page OCR. Every
read is kept in ``FaxReading.reads`` for the record, and every reason for
sending the FAX to triage in ``problems``.
"""

from __future__ import annotations

import difflib
import io
import math
import os
import re
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import zxingcpp
from PIL import Image, ImageFilter

from madoguchi.config import SupportNumberSettings
from madoguchi.ocr import tesseract
from madoguchi.ocr.form import (
    DIGIT_BOXES_MM,
    DIGIT_COUNT,
    DIGIT_ROW_MM,
    MARK_CENTERS_MM,
    MARK_SIZE_MM,
    PAGE_W_MM,
    QR_PAYLOAD_RE,
    TICKET_BOX_MM,
    Rect,
)
from madoguchi.ocr.pages import Deadline, FaxLimits, load_pages
from madoguchi.ocr.preprocess import (
    binarise,
    close_vertically,
    deskew,
    despeckle,
    ink_mask,
    is_blank,
    remove_streaks,
    rotate,
    to_gray,
)
from madoguchi.ticketing.support_number import (
    SupportNumber,
    find_support_number,
    parse_support_number,
)

Method = Literal["qr", "zonal", "fullpage", "qr+zonal"]

# Parts of the form are cut out level at this many pixels per millimetre
# (254 dpi), fine enough to find the box lines; the digits are then scaled
# to the height Tesseract reads best (_DIGIT_HEIGHT_PX).
_CROP_PX_PER_MM = 10.0
# Lowest character confidence of the unconstrained zonal read to trust it.
ZONAL_MIN_CONFIDENCE = 0.45
# A full-page read whose second read is illegible needs this confidence.
FULLPAGE_MIN_CONFIDENCE = 0.30
# Share of a digit box's interior covered in ink: below is empty, above is a blot.
_BOX_EMPTY_INK = 0.012
_BOX_SMUDGED_INK = 0.42


@dataclass(frozen=True)
class MethodRead:
    """One attempt to read one field, kept for the record."""

    method: Literal["qr", "zonal", "fullpage"]
    field: Literal["support_number", "ticket_number"]
    page: int  # 1-based
    raw: str  # what the method saw, digits or text
    value: str | None  # the validated value, or None
    confidence: float  # 0..1
    note: str = ""


@dataclass
class FaxReading:
    """What the reader made of a FAX.

    ``support_number`` None means unreadable: the caller flags the ticket
    ``unreadable_fax`` and ``problems`` says why.
    """

    support_number: SupportNumber | None
    ticket_number: str | None
    method: Method | None
    confidence: float
    reads: list[MethodRead]
    text: str
    page_count: int
    problems: list[str]
    page_images: list[bytes] = field(default_factory=list, repr=False)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def readable(self) -> bool:
        return self.support_number is not None


# --- the form's geometry on the page --------------------------------------


@dataclass(frozen=True)
class FormGeometry:
    """Where the form lies on a page: millimetres on the form to pixels on the image."""

    matrix: np.ndarray  # 2×3, px = matrix @ (x_mm, y_mm, 1)
    marks_found: int

    @property
    def angle(self) -> float:
        """Counter-clockwise turn of the page in degrees."""
        return -math.degrees(math.atan2(self.matrix[1, 0], self.matrix[0, 0]))

    @property
    def px_per_mm(self) -> float:
        return float(np.hypot(self.matrix[0, 0], self.matrix[1, 0]))

    def rectify(self, gray: Image.Image, rect: Rect, px_per_mm: float) -> Image.Image:
        """The part of the form inside ``rect``, level and at ``px_per_mm``."""
        m = self.matrix
        size = (round(rect.width * px_per_mm), round(rect.height * px_per_mm))
        data = (
            m[0, 0] / px_per_mm,
            m[0, 1] / px_per_mm,
            m[0, 0] * rect.x0 + m[0, 1] * rect.y0 + m[0, 2],
            m[1, 0] / px_per_mm,
            m[1, 1] / px_per_mm,
            m[1, 0] * rect.x0 + m[1, 1] * rect.y0 + m[1, 2],
        )
        return gray.transform(
            size,
            Image.Transform.AFFINE,
            data,
            resample=Image.Resampling.BILINEAR,
            fillcolor=255,
        )


def _integral(a: np.ndarray) -> np.ndarray:
    out = np.zeros((a.shape[0] + 1, a.shape[1] + 1), dtype=np.int32)
    np.cumsum(np.cumsum(a, axis=0, dtype=np.int32), axis=1, out=out[1:, 1:])
    return out


def _box_sum(ii: np.ndarray, y0: int, x0: int, y1: int, x1: int) -> int:
    h, w = ii.shape[0] - 1, ii.shape[1] - 1
    y0, y1 = max(0, min(h, y0)), max(0, min(h, y1))
    x0, x1 = max(0, min(w, x0)), max(0, min(w, x1))
    return int(ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0])


def _mark_candidates(solid: np.ndarray, ii: np.ndarray, side: float) -> list[tuple[float, float]]:
    """Centres (row, col) of solid squares about ``side`` wide in a reduced ink map."""
    k = max(2, int(side * 0.6))
    win = ii[k:, k:] - ii[:-k, k:] - ii[k:, :-k] + ii[:-k, :-k]
    ys, xs = np.nonzero(win >= int(0.95 * k * k))
    points = np.stack([ys + k / 2.0, xs + k / 2.0], axis=1) if len(ys) else np.empty((0, 2))
    centres: list[tuple[float, float]] = []
    while len(points) and len(centres) < 12:
        near = np.hypot(*(points - points[0]).T) <= side
        cy, cx = points[near].mean(axis=0)
        points = points[~near]
        half = side / 2
        inner = _box_sum(ii, round(cy - half), round(cx - half), round(cy + half), round(cx + half))
        outer = _box_sum(
            ii,
            round(cy - 1.6 * half),
            round(cx - 1.6 * half),
            round(cy + 1.6 * half),
            round(cx + 1.6 * half),
        )
        inner_area = (2 * half) ** 2
        ring_area = (3.2 * half) ** 2 - inner_area
        # A mark is a filled square standing alone; a QR finder pattern or a
        # bold glyph has white inside or ink around.
        if inner >= 0.7 * inner_area and (outer - inner) <= 0.12 * ring_area:
            centres.append((float(cy), float(cx)))
    return centres


def find_form(ink: np.ndarray, px_per_mm: float | None = None) -> FormGeometry | None:
    """Locate our form's registration marks; None when this is not our form."""
    h, w = ink.shape
    ppm = px_per_mm or w / PAGE_W_MM
    factor = max(1, int(MARK_SIZE_MM * ppm / 10))
    h_r, w_r = (h // factor) * factor, (w // factor) * factor
    reduced = (
        ink[:h_r, :w_r]
        .reshape(h_r // factor, factor, w_r // factor, factor)
        .mean(axis=(1, 3), dtype=np.float32)
    )
    solid = reduced > 0.6
    ii = _integral(solid)
    side = MARK_SIZE_MM * ppm / factor
    centres = _mark_candidates(solid, ii, side)
    if len(centres) < 3:
        return None

    rh, rw = solid.shape
    form_pts: list[tuple[float, float]] = []
    img_pts: list[tuple[float, float]] = []
    for fx, fy in MARK_CENTERS_MM:
        # Expect each mark in its own corner of the page, allowing for
        # scaling, a header band pushed in at the top, and skew.
        want_left, want_top = fx < PAGE_W_MM / 2, fy < 150
        in_corner = [
            (cy, cx)
            for cy, cx in centres
            if (cx < rw * 0.3 if want_left else cx > rw * 0.7)
            and (cy < rh * 0.3 if want_top else cy > rh * 0.7)
        ]
        if not in_corner:
            continue
        corner_y = 0.0 if want_top else float(rh)
        corner_x = 0.0 if want_left else float(rw)
        cy, cx = min(in_corner, key=lambda p: math.hypot(p[0] - corner_y, p[1] - corner_x))
        u, v = _refine_centre(ink, cx * factor, cy * factor, MARK_SIZE_MM * ppm)
        form_pts.append((fx, fy))
        img_pts.append((u, v))
    if len(form_pts) < 3:
        return None
    src = np.array([[x, y, 1.0] for x, y in form_pts])
    dst = np.array(img_pts)
    solution, *_ = np.linalg.lstsq(src, dst, rcond=None)
    matrix = solution.T
    geometry = FormGeometry(matrix=matrix, marks_found=len(form_pts))
    residual = np.abs(src @ solution - dst).max() / ppm
    sx = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    sy = float(np.hypot(matrix[0, 1], matrix[1, 1]))
    if (
        residual > 2.5
        or not 0.6 < sx / ppm < 1.6
        or abs(sx / sy - 1) > 0.12
        or abs(geometry.angle) > 8
    ):
        return None
    return geometry


def _refine_centre(ink: np.ndarray, u: float, v: float, side: float) -> tuple[float, float]:
    half = int(side * 0.8)
    x0, y0 = max(0, int(u) - half), max(0, int(v) - half)
    window = ink[y0 : int(v) + half, x0 : int(u) + half]
    ys, xs = np.nonzero(window)
    if len(ys) == 0:
        return u, v
    return x0 + float(xs.mean()), y0 + float(ys.mean())


# --- the QR code -----------------------------------------------------------


@dataclass(frozen=True)
class _QrRead:
    raw: str
    digits: str | None
    ticket: str | None


def _read_qr(gray: Image.Image) -> list[_QrRead]:
    found = zxingcpp.read_barcodes(
        gray, formats=zxingcpp.BarcodeFormat.QRCode, try_rotate=False, try_invert=False
    )
    reads = []
    for barcode in found:
        m = QR_PAYLOAD_RE.match(barcode.text)
        reads.append(
            _QrRead(
                barcode.text, m.group("digits") if m else None, m.group("ticket") if m else None
            )
        )
    return reads


# --- the digit boxes -------------------------------------------------------

BoxStatus = Literal["empty", "smudged", "incomplete", "read", "unclear"]


@dataclass(frozen=True)
class _Zonal:
    status: BoxStatus
    digits: str
    confidence: float
    note: str = ""


def _edge(profile: np.ndarray, expected: int, reach: int, min_share: float) -> int | None:
    lo, hi = max(0, expected - reach), min(len(profile), expected + reach + 1)
    if lo >= hi:
        return None
    best = lo + int(np.argmax(profile[lo:hi]))
    return best if profile[best] >= min_share else None


def _box_interior(ink: np.ndarray, box: Rect, origin: Rect, r: float) -> np.ndarray:
    """The inside of one box, its ruled lines found and cut away."""
    left, right = round((box.x0 - origin.x0) * r), round((box.x1 - origin.x0) * r)
    top, bottom = round((box.y0 - origin.y0) * r), round((box.y1 - origin.y0) * r)
    reach = round(1.2 * r)
    mid_rows = ink[top + reach : bottom - reach]
    mid_cols = ink[:, left + reach : right - reach]
    col_share = mid_rows.mean(axis=0) if mid_rows.size else np.zeros(ink.shape[1])
    row_share = mid_cols.mean(axis=1) if mid_cols.size else np.zeros(ink.shape[0])
    left = _edge(col_share, left, reach, 0.5) or left
    right = _edge(col_share, right, reach, 0.5) or right
    top = _edge(row_share, top, reach, 0.5) or top
    bottom = _edge(row_share, bottom, reach, 0.5) or bottom
    margin = round(0.55 * r)
    inside = ink[top + margin : bottom - margin + 1, left + margin : right - margin + 1].copy()
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
    rows = _main_span(mask.sum(axis=1), gap)
    if rows is None:
        return mask[:0, :0]
    band = mask[rows[0] : rows[1]]
    cols = _main_span(band.sum(axis=0), gap)
    if cols is None:
        return mask[:0, :0]
    return band[:, cols[0] : cols[1]]


# Tesseract reads digits best at about this height in pixels (measured on
# the corpus: 20-24 px beat 28-40 px, with fewer 3/9 and 5/9 confusions).
_DIGIT_HEIGHT_PX = 24


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
    scale = _DIGIT_HEIGHT_PX / height
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _despeckle_mask(mask: np.ndarray) -> np.ndarray:
    image = Image.fromarray(np.where(mask, 0, 255).astype(np.uint8))
    return np.asarray(despeckle(image)) < 128


def _read_digit_boxes(gray: Image.Image, geometry: FormGeometry, deadline: Deadline) -> _Zonal:
    r = _CROP_PX_PER_MM
    pad = 2.0
    strip_rect = Rect(
        DIGIT_ROW_MM.x0 - pad, DIGIT_ROW_MM.y0 - pad, DIGIT_ROW_MM.x1 + pad, DIGIT_ROW_MM.y1 + pad
    )
    strip = np.asarray(geometry.rectify(gray, strip_rect, r)) < 150
    interiors = [
        _despeckle_mask(_box_interior(strip, box, strip_rect, r)) for box in DIGIT_BOXES_MM
    ]
    shares = [float(i.mean()) if i.size else 0.0 for i in interiors]
    empty = [s < _BOX_EMPTY_INK for s in shares]
    smudged = [i + 1 for i, s in enumerate(shares) if s > _BOX_SMUDGED_INK]
    if all(empty):
        return _Zonal("empty", "", 0.0)
    if smudged:
        return _Zonal("smudged", "", 0.0, f"box {', '.join(map(str, smudged))} covered in ink")
    if any(empty):
        blanks = [str(i + 1) for i, e in enumerate(empty) if e]
        return _Zonal("incomplete", "", 0.0, f"box {', '.join(blanks)} empty")

    image = _typeset([_glyph(i, r) for i in interiors])
    read = _two_reads(image, tesseract.DIGITS, 200, deadline, "the digit boxes")
    digits = "".join(ch for ch in read.constrained if ch.isdigit())
    if len(digits) != DIGIT_COUNT:
        return _Zonal("unclear", digits, read.confidence, f"read {len(digits)} digits, not 12")
    if read.free != digits:
        return _Zonal("unclear", digits, read.confidence, f"unconstrained read gave {read.free!r}")
    return _Zonal("read", digits, read.confidence)


@dataclass(frozen=True)
class _TwoReads:
    constrained: str  # with the character whitelist
    free: str  # without it, spaces dropped
    confidence: float  # lowest character confidence of the free read, 0..1


def _two_reads(
    image: Image.Image, whitelist: str, dpi: int, deadline: Deadline, what: str
) -> _TwoReads:
    """Read a line twice: constrained to ``whitelist``, and free.

    Tesseract's confidences are only meaningful without a whitelist (see
    ``tesseract.py``), and a line that reads the same both ways is one whose
    characters did not need forcing into the allowed set.
    """
    common = {"lang": tesseract.ENGLISH, "psm": tesseract.PSM_SINGLE_LINE, "dpi": dpi}
    free = tesseract.recognise(image, chars=True, timeout=_ocr_timeout(deadline, what), **common)
    constrained = tesseract.recognise(
        image, whitelist=whitelist, timeout=_ocr_timeout(deadline, what), **common
    )
    free_text = "".join(c.text for c in free.chars).replace(" ", "")
    confidence = min((c.conf for c in free.chars), default=0.0) / 100.0
    return _TwoReads(constrained.text.replace(" ", ""), free_text, confidence)


def _ocr_timeout(deadline: Deadline, what: str) -> float:
    return min(tesseract.DEFAULT_TIMEOUT, deadline.check(f"reading {what}"))


# --- the 問合せ番号 (ticket number) ---------------------------------------

_DASHES = "-‐‑‒–—―−ｰー－一"


def ticket_pattern(prefix: str) -> re.Pattern[str]:
    """A ticket number as OCR renders it: odd dashes, stray spaces, 丁 for T."""
    dash = "[" + re.escape(_DASHES) + "]"
    first = re.escape(prefix)
    if prefix.startswith("T"):
        first = "[T丁]" + re.escape(prefix[1:])
    return re.compile(
        rf"(?<![A-Za-z0-9]){first}\s*{dash}?\s*(\d{{4}})\s*{dash}\s*(\d{{6}})(?![0-9])"
    )


def find_ticket_number(text: str, prefix: str = "T") -> str | None:
    m = ticket_pattern(prefix).search(unicodedata.normalize("NFKC", text))
    return f"{prefix}-{m.group(1)}-{m.group(2)}" if m else None


def _read_ticket_box(
    gray: Image.Image, geometry: FormGeometry, prefix: str, deadline: Deadline
) -> tuple[str, str | None, float] | None:
    r = _CROP_PX_PER_MM
    inner = TICKET_BOX_MM.inset(0.8)
    crop = np.asarray(geometry.rectify(gray, inner, r)) < 150
    crop = _despeckle_mask(crop)
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
    scale = _DIGIT_HEIGHT_PX / height
    image = image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
        Image.Resampling.LANCZOS,
    )
    read = _two_reads(image, prefix + "-" + tesseract.DIGITS, 200, deadline, "the 問合せ番号 box")
    value = find_ticket_number(read.constrained, prefix)
    if value is not None and find_ticket_number(read.free, prefix) != value:
        return read.constrained, None, read.confidence
    return read.constrained, value, read.confidence


# --- whole pages -----------------------------------------------------------


@dataclass
class _Page:
    number: int
    blank: bool
    geometry: FormGeometry | None = None
    qr: list[_QrRead] = field(default_factory=list)
    zonal: _Zonal | None = None
    levelled: Image.Image | None = None
    cleaned: Image.Image | None = None
    ocr: tesseract.OcrResult | None = None
    english: tesseract.OcrResult | None = None  # the English page read, when one was made


def _level(page: _Page, gray: Image.Image, ink: np.ndarray) -> Image.Image:
    """The page turned level: by the form's marks when it is our form, else by its lines."""
    if page.geometry is not None:
        return rotate(gray, -page.geometry.angle)
    return deskew(gray, ink)[0]


def _cleaned(page: _Page) -> Image.Image:
    """The levelled page for full-page OCR, specks gone."""
    if page.cleaned is None:
        assert page.levelled is not None
        page.cleaned = despeckle(page.levelled)
    return page.cleaned


def _full_text(page: _Page, deadline: Deadline) -> tesseract.OcrResult:
    if page.ocr is None:
        assert page.levelled is not None
        page.ocr = tesseract.recognise(
            _cleaned(page),
            lang=tesseract.JAPANESE,
            psm=tesseract.PSM_AUTO,
            chars=True,
            dpi=_page_dpi(page.levelled),
            timeout=min(tesseract.DEFAULT_TIMEOUT * 2, deadline.check("OCR of a page")),
        )
    return page.ocr


def _page_dpi(image: Image.Image) -> int:
    dpi = image.info.get("dpi")
    if isinstance(dpi, tuple) and dpi and float(dpi[0]) > 0:
        return round(float(dpi[0]))
    return round(image.width / 8.5)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    binarise(image).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _digits_confidence(ocr: tesseract.OcrResult, digits: str) -> float:
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


class _Stopwatch:
    """Wall and CPU seconds per phase; CPU includes Tesseract's (reaped children).

    CPU time is what "seconds per page on one core" means when other work
    shares the machine; wall time is what the caller waits.
    """

    def __init__(self, into: dict[str, float]) -> None:
        self._into = into
        self._phase = ""
        self._wall = self._cpu = 0.0

    @staticmethod
    def _cpu_now() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def start(self, phase: str) -> None:
        self._phase = phase
        self._wall, self._cpu = time.perf_counter(), self._cpu_now()

    def stop(self) -> None:
        wall = time.perf_counter() - self._wall
        cpu = self._cpu_now() - self._cpu
        self._into[self._phase] = self._into.get(self._phase, 0.0) + wall
        key = f"{self._phase}_cpu"
        self._into[key] = self._into.get(key, 0.0) + cpu


def read_fax(
    pages: list[Image.Image],
    *,
    settings: SupportNumberSettings | None = None,
    ticket_prefix: str = "T",
    full_text: bool = True,
    deadline: Deadline | None = None,
) -> FaxReading:
    """Read the support number and ticket number off page images.

    ``full_text=False`` skips full-page OCR unless the number needs it (the
    text of such a reading is then partial); the pipeline keeps the default.
    """
    cfg = settings or SupportNumberSettings()
    deadline = deadline or Deadline(FaxLimits().timeout_seconds)
    timings: dict[str, float] = {}
    reads: list[MethodRead] = []
    problems: list[str] = []
    analysed: list[_Page] = []

    clock = _Stopwatch(timings)
    clock.start("number")
    for index, image in enumerate(pages, start=1):
        deadline.check(f"reading page {index}")
        gray, ink = remove_streaks(to_gray(image), ink_mask(image))
        page = _Page(number=index, blank=is_blank(ink))
        analysed.append(page)
        if page.blank:
            continue
        page.geometry = find_form(ink, _px_per_mm(image))
        page.qr = _read_qr(gray)
        if page.geometry is not None:
            page.zonal = _read_digit_boxes(gray, page.geometry, deadline)
            ticket = _read_ticket_box(gray, page.geometry, ticket_prefix, deadline)
            if ticket is not None:
                raw, value, conf = ticket
                reads.append(MethodRead("zonal", "ticket_number", index, raw, value, conf))
        page.levelled = _level(page, gray, ink)
        page.levelled.info["dpi"] = image.info.get("dpi", (0, 0))
    clock.stop()

    decision = _decide_from_forms(analysed, cfg, reads, problems)
    number, method, confidence = decision if decision else (None, None, 0.0)

    if decision is None and not problems:
        clock.start("number")
        number, method, confidence = _decide_from_text(analysed, cfg, reads, problems, deadline)
        clock.stop()

    clock.start("text")
    texts: list[str] = []
    for page in analysed:
        if page.blank or page.levelled is None:
            texts.append("")
            continue
        if full_text:
            _full_text(page, deadline)
        texts.append(page.ocr.text if page.ocr else "")
    clock.stop()
    text = "\n\f\n".join(texts).strip()

    ticket = _decide_ticket(analysed, ticket_prefix, reads, problems, deadline)
    images = [
        _png(p.levelled) if p.levelled is not None else _png(to_gray(img))
        for p, img in zip(analysed, pages, strict=True)
    ]
    return FaxReading(
        support_number=number,
        ticket_number=ticket,
        method=method,
        confidence=confidence,
        reads=reads,
        text=text,
        page_count=len(pages),
        problems=problems,
        page_images=images,
        timings=timings,
    )


def _px_per_mm(image: Image.Image) -> float | None:
    dpi = image.info.get("dpi")
    if isinstance(dpi, tuple) and dpi and float(dpi[0]) > 0:
        return float(dpi[0]) / 25.4
    return None


def _decide_from_forms(
    pages: list[_Page],
    cfg: SupportNumberSettings,
    reads: list[MethodRead],
    problems: list[str],
) -> tuple[SupportNumber, Method, float] | None:
    """The number from our forms' QR codes and digit boxes, or None.

    Appends to ``problems`` when a form holds a number that cannot be
    trusted; then the caller must not look further (no guessing from text).
    """
    accepted: list[tuple[SupportNumber, Method, float]] = []
    for page in pages:
        qr_number: SupportNumber | None = None
        for qr in page.qr:
            if qr.digits is None:
                reads.append(
                    MethodRead(
                        "qr",
                        "support_number",
                        page.number,
                        qr.raw,
                        None,
                        1.0,
                        "not our form's code",
                    )
                )
                continue
            parsed = parse_support_number(qr.digits, cfg)
            reads.append(
                MethodRead(
                    "qr",
                    "support_number",
                    page.number,
                    qr.raw,
                    parsed.digits if parsed else None,
                    1.0,
                    "" if parsed else "check digit fails",
                )
            )
            if parsed is None:
                problems.append(f"page {page.number}: the QR code's number fails its check digit")
            elif qr_number is not None and qr_number != parsed:
                problems.append(f"page {page.number}: two QR codes with different numbers")
            else:
                qr_number = parsed
            if qr.ticket:
                reads.append(MethodRead("qr", "ticket_number", page.number, qr.raw, qr.ticket, 1.0))

        zonal = page.zonal
        zonal_number: SupportNumber | None = None
        if zonal is not None and zonal.status != "empty":
            parsed = parse_support_number(zonal.digits, cfg) if zonal.status == "read" else None
            trusted = parsed is not None and zonal.confidence >= ZONAL_MIN_CONFIDENCE
            note = zonal.note
            if zonal.status == "read" and parsed is None:
                note = "check digit fails"
            elif parsed is not None and not trusted:
                note = f"confidence below {ZONAL_MIN_CONFIDENCE:.2f}"
            reads.append(
                MethodRead(
                    "zonal",
                    "support_number",
                    page.number,
                    zonal.digits,
                    parsed.digits if trusted and parsed else None,
                    zonal.confidence,
                    note,
                )
            )
            if trusted:
                zonal_number = parsed
            confident_digits = zonal.status == "read" and zonal.confidence >= ZONAL_MIN_CONFIDENCE
            if qr_number is not None and confident_digits and zonal.digits != qr_number.digits:
                problems.append(
                    f"page {page.number}: the QR code says {qr_number} but the boxes read "
                    f"{zonal.digits}"
                )
                continue
            if qr_number is None and zonal_number is None:
                problems.append(
                    f"page {page.number}: the support number boxes cannot be read ({note})"
                )
                continue
        if qr_number is not None and zonal_number is not None:
            accepted.append((qr_number, "qr+zonal", 1.0))
        elif qr_number is not None:
            accepted.append((qr_number, "qr", 1.0))
        elif zonal_number is not None:
            accepted.append((zonal_number, "zonal", zonal.confidence if zonal else 0.0))

    if problems:
        return None
    distinct = {n.digits for n, _, _ in accepted}
    if len(distinct) > 1:
        problems.append(f"pages carry different support numbers: {', '.join(sorted(distinct))}")
        return None
    return accepted[0] if accepted else None


@dataclass(frozen=True)
class _TextSearch:
    number: SupportNumber | None
    invalid: tuple[str, ...]
    confidence: float
    labelless: bool = False  # found by its printed form, neither at the top nor labelled


# The sending machine prints its header line in the top few millimetres.
_HEADER_BAND = 0.035
_SEPARATOR_RUN = re.compile(r"(?<=\d)[\s" + re.escape(_DASHES) + r"]{2,}(?=\d)")


def _canonical_labels(line: str, cfg: SupportNumberSettings) -> str:
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
_DISPLAY_FORMAT = re.compile(
    r"(?<![0-9])(\d{4})["
    + re.escape(_DASHES)
    + r"](\d{4})["
    + re.escape(_DASHES)
    + r"](\d{4})(?![0-9])"
)


def _search_line_words(
    ocr: tesseract.OcrResult, page_height: int
) -> list[tuple[str, tuple[tesseract.Word, ...]]]:
    """The page's lines without the sending machine's header, OCR slips at separators undone.

    Each line comes with the words it was made of, for where it is on the page.
    """
    lines: list[tuple[str, tuple[tesseract.Word, ...]]] = []
    for words in ocr.lines():
        # Word by word: Tesseract sometimes runs the header into the line below.
        kept = tuple(w for w in words if w.top + w.height / 2 >= _HEADER_BAND * page_height)
        if not kept:
            continue
        line = unicodedata.normalize("NFKC", tesseract.line_text(kept))
        if (
            not lines
            and kept[0].top < 0.08 * page_height
            and _TIME.search(line)
            and (_PAGE_MARK.search(line) or "FAX" in line.upper())
        ):
            continue  # a header printed a little lower than usual
        lines.append((_SEPARATOR_RUN.sub("-", line), kept))
    return lines


def _search_lines(ocr: tesseract.OcrResult, page_height: int) -> list[str]:
    return [line for line, _ in _search_line_words(ocr, page_height)]


def _search_ocr(
    ocr: tesseract.OcrResult, page_height: int, cfg: SupportNumberSettings
) -> _TextSearch:
    """The email path's search over OCR lines; failing that, the number in its printed form.

    The printed form (NNNN-NNNN-NNNN) counts anywhere on the page only when
    it is the one such number there; the caller then insists on a second
    read that agrees.
    """
    lines = _search_lines(ocr, page_height)
    search = find_support_number("", "\n".join(_canonical_labels(ln, cfg) for ln in lines), cfg)
    if search.number is not None or search.invalid:
        confidence = _digits_confidence(ocr, search.number.digits) if search.number else 0.0
        return _TextSearch(search.number, search.invalid, confidence)
    printed = {"".join(m.groups()) for ln in lines for m in _DISPLAY_FORMAT.finditer(ln)}
    valid = [n for n in (parse_support_number(d, cfg) for d in printed) if n is not None]
    if len(printed) == 1 and len(valid) == 1:
        number = valid[0]
        return _TextSearch(number, (), _digits_confidence(ocr, number.digits), labelless=True)
    return _TextSearch(None, (), 0.0)


def _line_with(ocr: tesseract.OcrResult, digits: str) -> tuple[tesseract.Word, ...] | None:
    for words in ocr.lines():
        text = unicodedata.normalize("NFKC", "".join(w.text for w in words))
        if digits in "".join(ch for ch in text if ch.isdigit()):
            return words
    return None


def _digit_run_box(
    words: tuple[tesseract.Word, ...], digits: str
) -> tuple[int, int, int, int] | None:
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
            elif not (t.isspace() or (t and t in _DASHES)):
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


def _reread(
    image: Image.Image,
    ocr: tesseract.OcrResult,
    digits: str,
    whitelist: str,
    deadline: Deadline,
) -> _TwoReads | None:
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
    scale = _DIGIT_HEIGHT_PX / h
    crop = crop.resize(
        (max(1, round(crop.width * scale)), max(1, round(crop.height * scale))),
        Image.Resampling.LANCZOS,
    )
    return _two_reads(crop, whitelist, 200, deadline, "a number on the page again")


def _decide_from_text(
    pages: list[_Page],
    cfg: SupportNumberSettings,
    reads: list[MethodRead],
    problems: list[str],
    deadline: Deadline,
) -> tuple[SupportNumber | None, Method | None, float]:
    """The number from the page text: a first look, and when it fails, a second.

    The first look is the email path's search over full-page OCR (see
    ``_first_look``). Full-page Japanese OCR misreads digits whose thin
    strokes a standard-resolution FAX broke (3 as 8 or 9, 4 as 1), or a
    label, or a separator, so the first look finds nothing, or only a number
    whose check digit fails, or a number its second read does not confirm.
    Then ``_second_look`` reads every place a number may stand once more,
    in ten differently prepared images, and accepts a number only on a clear
    vote. Either way nothing is guessed: the check digit must hold, and a
    FAX whose reads saw two different valid numbers goes to triage.
    """
    first_problems: list[str] = []
    seen_valid: set[str] = set()
    number, method, confidence = _first_look(
        pages, cfg, reads, first_problems, deadline, seen_valid
    )
    if number is not None:
        return number, method, confidence
    second = _second_look(pages, cfg, reads, deadline, seen_valid)
    if isinstance(second, tuple):
        return second
    problems.extend(first_problems)
    if second:
        problems.append(second)
    return None, None, 0.0


def _first_look(
    pages: list[_Page],
    cfg: SupportNumberSettings,
    reads: list[MethodRead],
    problems: list[str],
    deadline: Deadline,
    seen_valid: set[str],
) -> tuple[SupportNumber | None, Method | None, float]:
    """Full-page OCR, then the email path's search: top of the page or after a label.

    The Japanese pass is the page text anyway. When it finds no number at
    all, an English-only pass (digits read better without the kanji model)
    has a go. The first page with a number decides: a number found is read
    again from its own spot on the page and accepted when that read agrees
    (or is illegible and the first was confident). Every valid number any
    read saw goes into ``seen_valid``, for the second look to respect.
    """
    for page in pages:
        if page.blank or page.levelled is None:
            continue
        height = page.levelled.height
        source = _full_text(page, deadline)
        found = _search_ocr(source, height, cfg)
        name = "jpn+eng"
        if found.number is None and not found.invalid:
            source = tesseract.recognise(
                _cleaned(page),
                lang=tesseract.ENGLISH,
                psm=tesseract.PSM_BLOCK,
                dpi=_page_dpi(page.levelled),
                chars=True,
                timeout=_ocr_timeout(deadline, "a page in English"),
            )
            page.english = source
            found, name = _search_ocr(source, height, cfg), "eng"
        for bad in found.invalid:
            reads.append(
                MethodRead(
                    "fullpage",
                    "support_number",
                    page.number,
                    bad,
                    None,
                    0.0,
                    f"{name}: check digit fails",
                )
            )
        if found.number is None:
            if found.invalid:
                problems.append(
                    f"page {page.number}: {', '.join(found.invalid)} fails its check digit"
                )
                return None, None, 0.0
            continue
        digits = found.number.digits
        again = _reread(_cleaned(page), source, digits, tesseract.DIGITS + "-", deadline)
        seen = "".join(ch for ch in again.constrained if ch.isdigit()) if again else ""
        seen_valid.add(digits)
        if parse_support_number(seen, cfg) is not None:
            seen_valid.add(seen)
        if seen == digits:
            confidence = min(found.confidence, again.confidence) if again else 0.0
            verdict, note = "accept", f"{name}, confirmed by a second read"
            if found.labelless:
                note += " (printed form, no label)"
        elif len(seen) >= 10:
            verdict, note = "differs", f"{name}; a second read saw {seen}"
            confidence = found.confidence
        elif found.labelless:
            verdict, note = "uncertain", f"{name}: no label, and no second read to confirm it"
            confidence = found.confidence
        elif found.confidence >= FULLPAGE_MIN_CONFIDENCE:
            verdict, note = "accept", f"{name}, second read illegible"
            confidence = found.confidence
        else:
            verdict, note = "uncertain", f"{name}: confidence below {FULLPAGE_MIN_CONFIDENCE}"
            confidence = found.confidence
        accepted = verdict == "accept"
        reads.append(
            MethodRead(
                "fullpage",
                "support_number",
                page.number,
                digits,
                digits if accepted else None,
                confidence,
                note,
            )
        )
        if accepted:
            return found.number, "fullpage", confidence
        if verdict == "differs":
            problems.append(f"page {page.number}: read {digits} once and {seen} the second time")
        else:
            problems.append(f"page {page.number}: the number read is too uncertain")
        return None, None, 0.0
    problems.append("no support service number found")
    return None, None, 0.0


# --- the second look ---------------------------------------------------------

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
_RUN_SEPARATORS = frozenset(_DASHES) | frozenset(" .,:・")


@dataclass(frozen=True)
class _Spot:
    """A run of about the number's count of digits in a line of page OCR."""

    page: _Page
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


def _spots(page: _Page, ocr: tesseract.OcrResult, count: int) -> list[_Spot]:
    """Runs of ``count`` ± 1 digits (look-alike letters, odd separators allowed) on a page."""
    assert page.levelled is not None
    lines = _search_line_words(ocr, page.levelled.height)
    found: list[_Spot] = []
    for index, (text, words) in enumerate(lines):
        chars = [c for w in words for c in w.chars]
        folded = [unicodedata.normalize("NFKC", c.text) for c in chars]
        i = 0
        while i < len(chars):
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
    line = unicodedata.normalize("NFKC", _canonical_labels(text, cfg))
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


def _vote(page: _Page, spot: _Spot, deadline: Deadline) -> _Vote:
    assert page.levelled is not None
    sheet, rows = _sheet(_spot_images(to_gray(page.levelled), spot.box))
    common = {"lang": tesseract.ENGLISH, "psm": tesseract.PSM_BLOCK, "dpi": 200}
    what = "a number on the page a second time"
    constrained = tesseract.recognise(
        sheet, whitelist=tesseract.DIGITS + "-", timeout=_ocr_timeout(deadline, what), **common
    )
    free = tesseract.recognise(sheet, chars=True, timeout=_ocr_timeout(deadline, what), **common)

    def within(words: tuple[tesseract.Word, ...], top: int, bottom: int) -> list[tesseract.Word]:
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


def _second_look(
    pages: list[_Page],
    cfg: SupportNumberSettings,
    reads: list[MethodRead],
    deadline: Deadline,
    seen_valid: set[str],
) -> tuple[SupportNumber, Method, float] | str | None:
    """Read every place a number may stand again, ten ways, and let the reads vote.

    The places are runs of about twelve digits in the page OCR (letters
    OCR puts for digits, and any separators, allowed) where the email path
    would look: in the top lines, or after a label; a label OCR garbled in
    the page read is looked for again in a read of its line alone. Each
    place is read in ten images (``_spot_images``); a number wins the place
    when it passes its check digit and at least SECOND_LOOK_MIN_AGREE images
    read it the same with and without the digit whitelist, and no read of
    the place, nor any read of the first look, saw another valid number.
    The document's number is the one the places agree on; when two valid
    numbers were seen anywhere, the FAX goes to triage.

    Returns the accepted number, or a problem to add (None: nothing found).
    """
    count = sum(cfg.display_groups)
    spots: list[_Spot] = []
    for page in pages:
        if page.blank or page.levelled is None:
            continue
        _full_text(page, deadline)
        for ocr in (page.ocr, page.english):
            if ocr is None:
                continue
            for spot in _spots(page, ocr, count):
                if not any(s.page is page and _overlaps(s.box, spot.box) for s in spots):
                    spots.append(spot)

    winners: dict[str, float] = {}
    conflicts: set[str] = set()
    examined = 0
    for spot in spots:
        page = spot.page
        assert page.levelled is not None
        if spot.line < cfg.top_lines:
            place = "top of the page"
        elif _labelled(spot.text, cfg, count - 3) or _labelled(spot.previous, cfg, 0):
            place = "after its label"
        elif spot.real_digits >= count - 1 and _labelled(
            _line_again(page, spot.line_box, deadline), cfg, count - 3
        ):
            place = "after its label (read again)"
        else:
            continue
        if examined == _SECOND_LOOK_MAX_SPOTS:
            break
        examined += 1
        vote = _vote(page, spot, deadline)
        valid = vote.valid_numbers(cfg)
        tally = {d: vote.agreeing(d) for d in valid}
        best = max(tally, key=lambda d: len(tally[d]), default=None)
        agree = tally[best] if best else []
        raw = max(
            (vote.reads[i][0] for i in range(len(vote.reads))),
            key=lambda r: sum(v[0] == r for v in vote.reads),
        )
        if best is None or len(agree) < SECOND_LOOK_MIN_AGREE:
            note = "no valid number read the same by enough of the images"
            best = None
        elif len(valid) > 1 or (seen_valid - {best}):
            others = sorted((valid | seen_valid) - {best})
            note = f"{best} read, but also {', '.join(others)}"
            conflicts |= {best, *others}
            best = None
        else:
            note = f"{len(agree)} of {len(vote.reads)} images agree"
        confidence = float(np.median([vote.reads[i][2] for i in agree])) if agree else 0.0
        reads.append(
            MethodRead(
                "fullpage",
                "support_number",
                page.number,
                raw,
                best,
                confidence if best else 0.0,
                f"second look, {place}: {note}",
            )
        )
        if best is not None:
            winners[best] = max(winners.get(best, 0.0), confidence)
    if len(winners | dict.fromkeys(conflicts, 0.0)) > 1:
        seen = ", ".join(sorted(set(winners) | conflicts))
        return f"second look: reads saw different valid numbers: {seen}"
    if not winners:
        return None
    digits, confidence = winners.popitem()
    number = parse_support_number(digits, cfg)
    assert number is not None
    return number, "fullpage", confidence


def _line_again(page: _Page, line_box: tuple[int, int, int, int], deadline: Deadline) -> str:
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
        dpi=_page_dpi(page.levelled),
        timeout=_ocr_timeout(deadline, "a line again"),
    ).text


def _decide_ticket(
    pages: list[_Page],
    prefix: str,
    reads: list[MethodRead],
    problems: list[str],
    deadline: Deadline,
) -> str | None:
    """The 問合せ番号, which has no check digit: every read that found one must agree.

    A wrong ticket number would thread a customer's FAX into someone else's
    inquiry, so reads that disagree give no ticket (the FAX opens a new
    ticket, staff can merge) rather than a pick. One found in the page text
    counts only when a second read of the same spot agrees.
    """
    for page in pages:
        if page.ocr is None:
            continue
        found = find_ticket_number(page.ocr.text, prefix)
        if not found:
            continue
        digits = "".join(ch for ch in found if ch.isdigit())
        # The second read covers the digits only (the prefix is no digit).
        again = _reread(_cleaned(page), page.ocr, digits, tesseract.DIGITS + "-", deadline)
        seen = "".join(ch for ch in again.constrained if ch.isdigit()) if again else None
        confirmed = seen == digits
        reads.append(
            MethodRead(
                "fullpage",
                "ticket_number",
                page.number,
                found,
                found if confirmed else None,
                _ticket_confidence(page.ocr, found),
                "confirmed by a second read" if confirmed else f"a second read saw {seen}",
            )
        )
    seen_values = {r.value for r in reads if r.field == "ticket_number" and r.value}
    if len(seen_values) > 1:
        problems.append(f"問合せ番号 reads disagree: {', '.join(sorted(seen_values))}")
        return None
    return seen_values.pop() if seen_values else None


def _ticket_confidence(ocr: tesseract.OcrResult, ticket: str) -> float:
    digits = "".join(ch for ch in ticket if ch.isdigit())
    return _digits_confidence(ocr, digits)


def read_fax_document(
    data: bytes,
    filename: str,
    limits: FaxLimits | None = None,
    *,
    settings: SupportNumberSettings | None = None,
    ticket_prefix: str = "T",
    full_text: bool = True,
) -> FaxReading:
    """Load a FAX (TIFF or PDF bytes) and read it, within ``limits``.

    Raises FaxDocumentError for input that is not a readable FAX; an
    unreadable support number is not an error (``support_number`` is None).
    """
    limits = limits or FaxLimits()
    deadline = Deadline(limits.timeout_seconds)
    timings: dict[str, float] = {}
    clock = _Stopwatch(timings)
    clock.start("load")
    pages = load_pages(data, filename, limits, deadline)
    clock.stop()
    reading = read_fax(
        pages,
        settings=settings,
        ticket_prefix=ticket_prefix,
        full_text=full_text,
        deadline=deadline,
    )
    reading.timings.update(timings)
    return reading
