"""The digit boxes' second recogniser: a small perceptron of our own, trained by the project.

``bench/digits.py`` measured it against PP-OCR (``ocr/ppocr.py``) on the
corpus's boxes: PP-OCR alone reads far more of them right, so PP-OCR is
the reader's recogniser. Its mistakes are not this one's, though (a quick
7 whose bar a standard-resolution FAX merged into the box's top line is a
1 to PP-OCR, a 7 to this): when PP-OCR's reading of the boxes is not clear,
``box_digits.py`` weighs this one's probabilities in as a second opinion.

The model is a small multi-layer perceptron (numpy at run time, no other
package), trained by ``scripts/train_digits.py`` (seeded) on scikit-learn's
bundled scans of real handwritten digits and on digits set in fonts, all
distorted as pens and FAX machines distort them; half of them as a
standard-resolution FAX does (every two rows integrated into one scan line,
thresholded with noise, each line stretched back to two rows: the ink the
reader sees at 98 dpi), which made its second opinion surer on the boxes
PP-OCR hesitates on there. Its input is the one
scikit-learn's set was made with (UCI optdigits): the digit scaled to fit a
32×32 bitmap, and the ink counted in 4×4 blocks, an 8×8 grid of 0-16.
The model file (``ocr/models/digit_mlp.npz``) is committed, about 100 kB;
nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

MODEL_PATH = Path(__file__).resolve().parent / "models" / "digit_mlp.npz"
# No digit is ever impossible: the decision must see every alternative.
PROBABILITY_FLOOR = 1e-4
_GRID = 32
_BLOCK = 4


def features(mask: np.ndarray) -> np.ndarray:
    """The optdigits features of one digit's ink (True = ink): 64 values, 0..1.

    The ink's bounding box is scaled, keeping its shape, to fit 32×32 and
    centred; the ink in each 4×4 block is counted (0-16) and divided by 16.
    """
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return np.zeros(_GRID * _GRID // _BLOCK**2, dtype=np.float32)
    tight = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = tight.shape
    scale = _GRID / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    image = Image.fromarray(np.where(tight, 255, 0).astype(np.uint8))
    small = np.asarray(image.resize((nw, nh), Image.Resampling.BOX)) >= 96
    grid = np.zeros((_GRID, _GRID), dtype=bool)
    top, left = (_GRID - nh) // 2, (_GRID - nw) // 2
    grid[top : top + nh, left : left + nw] = small
    counts = grid.reshape(_GRID // _BLOCK, _BLOCK, _GRID // _BLOCK, _BLOCK).sum(axis=(1, 3))
    share: np.ndarray = (counts.ravel() / (_BLOCK * _BLOCK)).astype(np.float32)
    return share


@dataclass(frozen=True)
class DigitModel:
    """A trained perceptron: ReLU hidden layers, a softmax over the ten digits."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    temperature: float = 1.0

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Rows of features in, rows of ten probabilities out (floored, summing to 1)."""
        a = x.astype(np.float32)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            a = a @ w + b
            if i < len(self.weights) - 1:
                a = np.maximum(a, 0.0)
        a = a / self.temperature
        a = a - a.max(axis=1, keepdims=True)
        p = np.exp(a)
        p /= p.sum(axis=1, keepdims=True)
        p = np.maximum(p, PROBABILITY_FLOOR)
        out: np.ndarray = p / p.sum(axis=1, keepdims=True)
        return out


def save_model(model: DigitModel, path: Path) -> None:
    arrays: dict[str, np.ndarray] = {"temperature": np.array(model.temperature)}
    for i, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
        arrays[f"w{i}"], arrays[f"b{i}"] = w.astype(np.float32), b.astype(np.float32)
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]


@cache
def load_model(path: Path = MODEL_PATH) -> DigitModel:
    with np.load(path) as data:
        layers = sum(1 for k in data.files if k.startswith("w"))
        return DigitModel(
            weights=tuple(data[f"w{i}"] for i in range(layers)),
            biases=tuple(data[f"b{i}"] for i in range(layers)),
            temperature=float(data["temperature"]),
        )


def recognise(masks: list[np.ndarray]) -> np.ndarray:
    """Each box's digit ink → a row of ten probabilities (digit 0 first)."""
    if not masks:
        return np.zeros((0, 10))
    return load_model().probabilities(np.stack([features(m) for m in masks]))
