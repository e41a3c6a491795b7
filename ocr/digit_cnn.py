"""The digit boxes' second recogniser: a small convolutional network of our own.

``box_digits.py`` asks it when PP-OCR's reading of the boxes is not clear
alone. It replaced the project's perceptron (optdigits features, an 8×8 grid
of ink counts), which read 81-83 % of the corpus's handwritten boxes at
standard resolution; measured by ``bench/digits.py``
(``bench/results/digits.txt``).

Input: a box's ink (True = ink) cut to its bounding box, scaled keeping its
shape to fit ``_FIT`` px and centred on a ``_SIDE``-px square, grey (the
share of ink under each pixel). Three 3×3 convolutions (ReLU, 2×2 max
pooling after each), one hidden dense layer and a softmax over the ten
digits. Trained by ``scripts/train_digits.py`` (seeded; PyTorch for
training only) on digits drawn from pen strokes of its own, scikit-learn's
scans of real handwriting and digits set in fonts, distorted as pens and
FAX lines distort them, and on pen digits written into the form's boxes,
FAXed and cut out by the reader's own ``zonal.strip_cells`` (what it is
given at run time: line remnants and strokes lost with a line included).
Here it runs on numpy alone; the weights (``ocr/models/digit_cnn.npz``,
float16) are committed; nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

MODEL_PATH = Path(__file__).resolve().parent / "models" / "digit_cnn.npz"
# No digit is ever impossible: the decision must see every alternative.
PROBABILITY_FLOOR = 1e-4
_SIDE = 32
_FIT = 24


def features(mask: np.ndarray) -> np.ndarray:
    """One digit's ink → the network's input: ``_SIDE``×``_SIDE`` floats in 0..1 (1 = ink)."""
    out = np.zeros((_SIDE, _SIDE), dtype=np.float32)
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return out
    tight = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = tight.shape
    scale = _FIT / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    image = Image.fromarray(np.where(tight, 255, 0).astype(np.uint8))
    small = np.asarray(image.resize((nw, nh), Image.Resampling.BOX), dtype=np.float32) / 255.0
    top, left = (_SIDE - nh) // 2, (_SIDE - nw) // 2
    out[top : top + nh, left : left + nw] = small
    return out


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A 3×3 convolution, 'same' padding: x (n, c, h, w), w (k, c, 3, 3) → (n, k, h, w)."""
    n, c, h, wd = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    # windows: (n, c, h, w, 3, 3) → (n, h, w, c*9) @ (c*9, k)
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n, h, wd, c * 9)
    out = cols @ w.reshape(w.shape[0], -1).T + b
    result: np.ndarray = out.transpose(0, 3, 1, 2)
    return result


def _pool(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    pooled: np.ndarray = x[:, :, : h // 2 * 2, : w // 2 * 2].reshape(
        n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
    return pooled


@dataclass(frozen=True)
class DigitNet:
    """The trained network's weights; ``temperature`` calibrates its softmax."""

    convs: tuple[tuple[np.ndarray, np.ndarray], ...]
    dense: tuple[tuple[np.ndarray, np.ndarray], ...]
    temperature: float = 1.0

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Rows of inputs (n, _SIDE, _SIDE) → (n, 10) logits."""
        a = x[:, None].astype(np.float32)
        for w, b in self.convs:
            a = _pool(np.maximum(_conv(a, w, b), 0.0))
        a = a.reshape(len(a), -1)
        for i, (w, b) in enumerate(self.dense):
            a = a @ w.T + b
            if i < len(self.dense) - 1:
                a = np.maximum(a, 0.0)
        return a

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Rows of inputs in, rows of ten probabilities out (floored, summing to 1)."""
        a = self.logits(x) / self.temperature
        a = a - a.max(axis=1, keepdims=True)
        p = np.exp(a)
        p /= p.sum(axis=1, keepdims=True)
        p = np.maximum(p, PROBABILITY_FLOOR)
        out: np.ndarray = p / p.sum(axis=1, keepdims=True)
        return out


def save_model(net: DigitNet, path: Path) -> None:
    arrays: dict[str, np.ndarray] = {"temperature": np.array(net.temperature)}
    for kind, layers in (("conv", net.convs), ("dense", net.dense)):
        for i, (w, b) in enumerate(layers):
            arrays[f"{kind}{i}_w"] = w.astype(np.float16)
            arrays[f"{kind}{i}_b"] = b.astype(np.float16)
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]


@cache
def load_model(path: Path = MODEL_PATH) -> DigitNet:
    with np.load(path) as data:
        def layers(kind: str) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
            count = sum(1 for k in data.files if k.startswith(kind) and k.endswith("_w"))
            return tuple((data[f"{kind}{i}_w"].astype(np.float32),
                          data[f"{kind}{i}_b"].astype(np.float32)) for i in range(count))
        return DigitNet(layers("conv"), layers("dense"), float(data["temperature"]))


def recognise(masks: list[np.ndarray]) -> np.ndarray:
    """Each box's digit ink → a row of ten probabilities (digit 0 first)."""
    if not masks:
        return np.zeros((0, 10))
    return load_model().probabilities(np.stack([features(m) for m in masks]))
