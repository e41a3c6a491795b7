"""The text of our form, field by field, as "label: value" lines (PP-OCR line by line).

On a page that is our form (its marks found, ``geometry.py``), every field's
cell is cut out level (``FIELD_RECTS_MM``), its ruled lines dropped, its ink
split into text lines by the gaps between them, and each line read by
PP-OCR's recogniser (``ppocr.read_lines``). Full-page OCR of a form reads
the table's rules as text and loses much of what is written at standard
resolution; a cell at a time, the text keeps its label:

    会社名: 株式会社さくら商事
    お問い合わせ内容:
    ログイン画面で正しいパスワードを入力しても…
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from madoguchi.ocr import ppocr
from madoguchi.ocr.form import FIELD_LABELS, FIELD_RECTS_MM
from madoguchi.ocr.geometry import FormGeometry
from madoguchi.ocr.pages import Deadline
from madoguchi.ocr.preprocess import despeckle

_PX_PER_MM = 8.0  # about 200 dpi: what the recogniser's 48-px lines need
# A row of ink must be this far from the next to start a new line (mm).
_LINE_GAP_MM = 0.6
_MIN_LINE_MM = 1.2


def _text_lines(ink: np.ndarray, gray: np.ndarray) -> list[np.ndarray]:
    """A cell split into its text lines, top to bottom: each line's grey, with a margin."""
    rows = ink.sum(axis=1) > 0
    gap = max(1, round(_LINE_GAP_MM * _PX_PER_MM))
    lines, start, blank = [], None, 0
    for y, inked in enumerate([*rows, False]):
        if inked:
            if start is None:
                start = y
            blank = 0
        elif start is not None:
            blank += 1
            if blank >= gap or y == len(rows):
                end = y - blank + 1
                if end - start >= _MIN_LINE_MM * _PX_PER_MM:
                    cols = np.nonzero(ink[start:end].any(axis=0))[0]
                    m = max(2, (end - start) // 5)
                    lines.append(
                        gray[max(0, start - m) : end + m,
                             max(0, cols[0] - m) : cols[-1] + 1 + m]
                    )
                start, blank = None, 0
    return lines


def _cell(gray: Image.Image, geometry: FormGeometry, key: str) -> tuple[np.ndarray, np.ndarray]:
    """A field's cell, level: its ink (for the lines) and its grey (to read)."""
    cell = np.array(geometry.rectify(gray, FIELD_RECTS_MM[key].inset(0.9), _PX_PER_MM))
    ink = np.asarray(despeckle(Image.fromarray(cell))) < 150
    # Rules of the table that slipped in: rows or columns inked almost end to end.
    rules_r, rules_c = ink.mean(axis=1) > 0.6, ink.mean(axis=0) > 0.6
    ink[rules_r, :] = False
    ink[:, rules_c] = False
    cell[rules_r, :] = 255
    cell[:, rules_c] = 255
    return ink, cell


def form_text(gray: Image.Image, geometry: FormGeometry, deadline: Deadline) -> str:
    """The form's fields as "label: value" lines; the inquiry under its label."""
    cells: list[tuple[str, list[np.ndarray]]] = []
    for key, label in FIELD_LABELS:
        deadline.check("reading the form's fields")
        ink, grey = _cell(gray, geometry, key)
        cells.append((label, _text_lines(ink, grey)))
    texts = iter(ppocr.read_lines([line for _, lines in cells for line in lines]))
    out: list[str] = []
    for label, lines in cells:
        values = [next(texts) for _ in lines]
        values = [v for v in values if v]
        if len(values) <= 1 and label != FIELD_LABELS[-1][1]:
            out.append(f"{label}: {values[0] if values else ''}".rstrip())
        else:
            out.append(f"{label}:")
            out.extend(values)
    return "\n".join(out)
