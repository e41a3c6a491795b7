"""Each digit box's probability for each digit: PP-OCR's, with a second opinion when unclear.

PP-OCR (``ppocr.py``) reads the boxes; when its likeliest valid reading of
them is clear on its own (``rules.fax_number.clear_reading``: a margin over
every other valid reading, every digit seen), its probabilities are the
boxes'. When it is not, the project's perceptron (``digit_mlp.py``) reads
the same ink, and each box's probabilities become PP-OCR's times the
perceptron's to the power ``MLP_WEIGHT``: a mild second opinion, which
tips a box PP-OCR hesitates on (a quick 7 whose bar a standard-resolution
FAX merged into the box line: a 1 to PP-OCR, a 7 to the perceptron) and
cannot overrule a digit PP-OCR is sure of. The decision (margin, digit
floor, the registered numbers) is unchanged and sees the combined
probabilities; pages PP-OCR reads clearly (the form's printed digits,
most typed ones) are not touched.

Measured with ``bench/handwriting_diag.py`` on two development seeds, not
the bench's (``bench/results/handwriting_diag.txt``).
"""

from __future__ import annotations

import numpy as np

from madoguchi.ocr import digit_mlp, ppocr
from madoguchi.ticketing.rules.fax_number import clear_reading, valid_readings

# The perceptron's probabilities count with this power (PP-OCR's with 1).
MLP_WEIGHT = 0.3


def combined(pp: np.ndarray, mlp: np.ndarray, weight: float = MLP_WEIGHT) -> np.ndarray:
    """PP-OCR's box probabilities times the perceptron's to ``weight``, floored as PP-OCR's."""
    product: np.ndarray = np.clip(pp * np.power(mlp, weight), ppocr.PROBABILITY_FLOOR, 1.0)
    return product


def is_clear(probabilities: np.ndarray, *, luhn: bool = True) -> bool:
    """The boxes' likeliest valid reading is clear by these probabilities alone."""
    rows = probabilities.tolist()
    readings = valid_readings(rows, luhn=luhn)
    return bool(readings) and clear_reading(readings, rows) is not None


def box_probabilities(glyphs: list[np.ndarray], *, luhn: bool = True) -> np.ndarray:
    """Each box's ink → ten probabilities (0 first): PP-OCR's, or with the perceptron's.

    The perceptron is asked only when PP-OCR's reading is not clear alone.
    Raises OcrUnavailableError when PP-OCR's packages are missing.
    """
    pp = ppocr.digit_probabilities(glyphs)
    if not glyphs or is_clear(pp, luhn=luhn):
        return pp
    return combined(pp, digit_mlp.recognise(glyphs))
