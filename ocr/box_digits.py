"""Each digit box's probability for each digit: PP-OCR's, with a second opinion when unclear.

PP-OCR (``ppocr.py``) reads the boxes; when its likeliest valid reading of
them is clear on its own (``rules.fax_number.clear_reading``: a margin over
every other valid reading, every digit seen), its probabilities are the
boxes'. When it is not, the project's small convolutional network
(``digit_cnn.py``) reads the same ink, and each box's probabilities become
PP-OCR's times the network's (``combined``): a second
opinion, which tips a box PP-OCR hesitates on (a quick 7 whose bar a
standard-resolution FAX merged into the box line: a 1 to PP-OCR, a 7 to the
network) and cannot overrule a digit PP-OCR is sure of. The decision
(margin, digit floor, the registered numbers) is unchanged and sees the
combined probabilities; pages PP-OCR reads clearly (the form's printed
digits, most typed ones) are not touched.

A 7 whose bar lies on the box's top line at standard resolution (98 dpi:
the bar merged into the line, as thick as it) loses its bar with the line
and reads as a 1. Where the digit meets the top line at the box's right
part (``zonal.BoxInk.bar``), and the box reads as a 1 or a 7, PP-OCR reads
the digit again with the line's pixels inside the box kept; when that
reading is a 7 (at least ``BAR_SEVEN``), the box's 7 gets that
probability, its 1 keeping its own. The 1/7 question alone is asked: the
check digit and the closed set of registered numbers settle it, and a 1
under the top line, which the kept line makes a 7 too, stays as likely a
1 as it was (the decision then sees two readings and wants its margin).

Measured with ``bench/handwriting_diag.py`` on two development seeds, not
the bench's (``bench/results/handwriting_diag.txt``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from madoguchi.ocr import digit_cnn, ppocr
from madoguchi.ticketing.rules.fax_number import clear_reading, valid_readings

# The network's probabilities count with this power (PP-OCR's with 1): it reads the boxes
# about as well as PP-OCR (bench/results/digits.txt), and its mistakes are other ones.
SECOND_WEIGHT = 1.0
# The network's probabilities are floored here before the power: sure as it may be that a
# digit is not what PP-OCR sees, it divides PP-OCR's probability by at most 1 / 0.03 (33).
SECOND_FLOOR = 0.03
# A box PP-OCR scores low for every digit (its scores need not sum to one) is lifted, after
# the product, towards summing to one by at most this factor: a digit both recognisers
# see, PP-OCR only faintly (p 0.02), is seen; a blot PP-OCR sees no digit in (its scores
# summing to 0.001) stays under the decision's digit floor (0.05) however sure the
# network is. Measured on the development seeds (bench/results/handwriting_diag.txt).
MAX_LIFT = 20.0
# The box read with its top line kept must be a 7 at least this likely to count.
BAR_SEVEN = 0.5


def combined(pp: np.ndarray, other: np.ndarray, weight: float = SECOND_WEIGHT) -> np.ndarray:
    """PP-OCR's box probabilities times the network's (at least ``SECOND_FLOOR``) to
    ``weight``, each box's row then lifted towards a sum of one (``MAX_LIFT`` at most) and
    floored as PP-OCR's: the second opinion tips a box PP-OCR hesitates on and confirms one
    PP-OCR sees faintly, never vetoes a digit PP-OCR is sure of (a large 5 the perceptron
    before it took for a 9, PP-OCR 0.98 a 5, cost a page its number)."""
    second = np.power(np.maximum(other, SECOND_FLOOR), weight)
    product = pp * second
    lift = np.minimum(MAX_LIFT, 1.0 / np.maximum(product.sum(axis=1, keepdims=True), 1e-12))
    lifted: np.ndarray = np.clip(product * np.maximum(lift, 1.0), ppocr.PROBABILITY_FLOOR, 1.0)
    return lifted


def is_clear(probabilities: np.ndarray, *, luhn: bool = True) -> bool:
    """The boxes' likeliest valid reading is clear by these probabilities alone."""
    rows = probabilities.tolist()
    readings = valid_readings(rows, luhn=luhn)
    return bool(readings) and clear_reading(readings, rows) is not None


def with_bars(probabilities: np.ndarray, bars: Sequence[np.ndarray | None]) -> np.ndarray:
    """A 7's bar on the top line: boxes read as 1 or 7 that have a ``bar`` glyph (the digit
    with the top line kept) take PP-OCR's 7 for that glyph when it is a 7, ``BAR_SEVEN``
    at least, and more than their own. The other nine digits are left as they were.
    """
    asked = [(i, bar) for i, bar in enumerate(bars)
             if bar is not None and bar.size and int(probabilities[i].argmax()) in (1, 7)]
    if not asked:
        return probabilities
    again = ppocr.digit_probabilities([bar for _, bar in asked])
    out = probabilities.copy()
    for row, (i, _) in zip(again, asked, strict=True):
        if int(row.argmax()) == 7 and row[7] >= BAR_SEVEN:
            out[i, 7] = max(out[i, 7], row[7])
    return out


def box_probabilities(glyphs: list[np.ndarray], *, luhn: bool = True,
                      bars: Sequence[np.ndarray | None] = ()) -> np.ndarray:
    """Each box's ink → ten probabilities (0 first): PP-OCR's, or with the network's.

    The network is asked only when PP-OCR's reading is not clear alone.
    ``bars``: each box's digit with the top line kept, or None (``with_bars``).
    Raises OcrUnavailableError when PP-OCR's packages are missing.
    """
    pp = ppocr.digit_probabilities(glyphs)
    if glyphs and not is_clear(pp, luhn=luhn):
        pp = combined(pp, digit_cnn.recognise(glyphs))
    return with_bars(pp, bars) if bars else pp
