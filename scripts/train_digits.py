"""Train the box recogniser's second opinion (ocr/digit_mlp.py): ocr/models/digit_mlp.npz.

    .venv/bin/pip install scikit-learn==1.9.1      # for training only
    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_digits.py [--out ocr/models/digit_mlp.npz]

Reproducible: one seed for every random choice; the same packages and fonts
give the same file. Training data, nothing downloaded:

* scikit-learn's bundled handwritten digits (``load_digits``: 1,797 scans of
  real handwriting, UCI optdigits, 43 writers), each blown up to its 32×32
  bitmap again and distorted (turn, slant, squeeze, thicker and thinner
  strokes, broken strokes) many times over;
* half of every distortion (``--standard``, 0.5) ends as a standard-resolution
  FAX line ends a digit: two rows integrated into one line from a random
  first row, thresholded with noise, each line stretched back to two rows;
* digits set in fonts from Debian's font packages (DejaVu, Liberation,
  Noto CJK), distorted the same way, for numbers typed into the boxes.
  The fonts the FAX corpus (bench/fax_corpus.py) types its digits in are
  left out, and so is its handwriting synthesis: the bench measures the
  recogniser on writing and faces it was not trained on.

A fifth of the scikit-learn scans (and all their distortions) are held out;
the accuracy on them is printed, with the model's size.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from madoguchi.ocr.digit_mlp import MODEL_PATH, DigitModel, features, save_model

SEED = 20260117
# The share of training digits degraded as a standard-resolution (98 dpi) FAX does.
STANDARD = 0.5
TRAIN_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerifCondensed.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-ExtraLight.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Oblique.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Italic.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
)


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(steps):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    return ~_dilate(~mask, steps)


def _standard_lines(fine: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A digit at square pixels (ink 255) as a standard-resolution FAX gives it back.

    The scanner integrates every two rows into one line (a box filter, from a
    random first row), the line is thresholded with noise (the corpus's and a
    FAX machine's), and the reader stretches each line back to two rows.
    """
    h, w = fine.shape
    phase = int(rng.integers(0, 2))
    padded = np.zeros((h + phase + 2, w), dtype=np.float32)
    padded[phase : phase + h] = fine
    lines = padded[: (len(padded) // 2) * 2].reshape(-1, 2, w).mean(axis=1)
    grey = lines + rng.normal(0, rng.uniform(8, 40), lines.shape)
    ink = grey >= rng.uniform(100, 150)
    return np.repeat(ink, 2, axis=0)


def _distort(mask: np.ndarray, rng: np.random.Generator, size: int,
             standard: float = 0.0) -> np.ndarray:
    """One way a pen, a scanner and a FAX line may change a digit; returns ink at ``size`` px.

    ``standard``: the share of digits degraded as a standard-resolution FAX line does.
    """
    h, w = mask.shape
    image = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8))
    pad = max(h, w) // 2
    canvas = Image.new("L", (w + 2 * pad, h + 2 * pad), 0)
    canvas.paste(image, (pad, pad))
    angle = math.radians(rng.uniform(-12, 12))
    shear = rng.uniform(-0.35, 0.35)
    sx, sy = rng.uniform(0.75, 1.25), rng.uniform(0.85, 1.15)
    cx, cy = canvas.width / 2, canvas.height / 2
    cos, sin = math.cos(angle), math.sin(angle)
    a, b = cos / sx, (sin + shear) / sx
    d, e = -sin / sy, cos / sy
    coeffs = (a, b, cx - a * cx - b * cy, d, e, cy - d * cx - e * cy)
    turned = canvas.transform(
        canvas.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR
    )
    ink = np.asarray(turned) >= 128
    scale = size / max(1, h)
    small = Image.fromarray(np.where(ink, 255, 0).astype(np.uint8)).resize(
        (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale))),
        Image.Resampling.BOX,
    )
    if rng.random() < standard:
        out = _standard_lines(np.asarray(small, dtype=np.float32), rng)
    else:
        grey = np.asarray(small, dtype=np.float32) + rng.normal(0, 40, (small.height, small.width))
        out = grey >= rng.uniform(90, 170)
    stroke = rng.integers(-1, 3)
    if stroke > 0:
        out = _dilate(out, int(stroke))
    elif stroke < 0 and out.sum() > 40:
        thinner = _erode(out, 1)
        out = thinner if thinner.sum() > out.sum() * 0.35 else out
    if rng.random() < 0.3:  # a standard-resolution FAX drops scan lines
        rows = rng.random(out.shape[0]) < 0.12
        out[rows] = False
    specks = rng.random(out.shape) < rng.uniform(0.0, 0.01)
    return out | specks


def _sklearn_bitmap(row: np.ndarray) -> np.ndarray:
    """An optdigits 8×8 count grid back to a 32×32 bitmap (smoothly)."""
    grid = Image.fromarray((row.reshape(8, 8) * 255 / 16).astype(np.uint8))
    return np.asarray(grid.resize((32, 32), Image.Resampling.BICUBIC)) >= 110


def _font_digit(path: str, digit: str) -> np.ndarray:
    font = ImageFont.truetype(path, 96)
    image = Image.new("L", (140, 160), 0)
    ImageDraw.Draw(image).text((20, 10), digit, fill=255, font=font)
    ink = np.asarray(image) >= 128
    ys, xs = np.nonzero(ink)
    return ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _samples(
    sources: list[tuple[np.ndarray, int]], copies: int, rng: np.random.Generator,
    standard: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    x, y = [], []
    for mask, label in sources:
        for _ in range(copies):
            size = int(rng.integers(18, 90))
            x.append(features(_distort(mask, rng, size, standard)))
            y.append(label)
    return np.stack(x), np.array(y)


def main(argv: list[str] | None = None) -> int:
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--copies", type=int, default=24, help="distortions per scan")
    parser.add_argument("--iters", type=int, default=40, help="training epochs")
    parser.add_argument("--standard", type=float, default=STANDARD,
                        help="share of digits degraded as at standard resolution")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rng = np.random.default_rng(SEED)

    digits = load_digits()
    order = rng.permutation(len(digits.target))
    held = set(order[: len(order) // 5].tolist())
    scans = [(_sklearn_bitmap(digits.data[i]), int(digits.target[i])) for i in range(len(order))]
    train_scans = [s for i, s in enumerate(scans) if i not in held]
    test_scans = [s for i, s in enumerate(scans) if i in held]
    fonts = [
        (_font_digit(f, str(d)), d) for f in TRAIN_FONTS if Path(f).exists() for d in range(10)
    ]

    x_scan, y_scan = _samples(train_scans, args.copies, rng, args.standard)
    x_font, y_font = _samples(fonts, args.copies * 8, rng, args.standard)
    x_plain = np.stack([features(m) for m, _ in train_scans])
    y_plain = np.array([d for _, d in train_scans])
    x = np.concatenate([x_scan, x_font, x_plain])
    y = np.concatenate([y_scan, y_font, y_plain])
    x_test, y_test = _samples(test_scans, 4, rng, args.standard)

    clf = MLPClassifier(
        hidden_layer_sizes=(192, 96),
        alpha=3e-4,
        batch_size=256,
        learning_rate_init=2e-3,
        max_iter=args.iters,
        random_state=SEED,
    )
    clf.fit(x, y)
    model = DigitModel(
        weights=tuple(w.astype(np.float32) for w in clf.coefs_),
        biases=tuple(b.astype(np.float32) for b in clf.intercepts_),
    )
    # The temperature that makes the held-out probabilities honest (least log loss).
    def log_loss(t: float) -> float:
        p = DigitModel(model.weights, model.biases, t).probabilities(x_test)
        return float(-np.mean(np.log(p[np.arange(len(y_test)), y_test])))

    temperature = min((1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0), key=log_loss)
    model = DigitModel(model.weights, model.biases, temperature)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, args.out)
    p = model.probabilities(x_test)
    accuracy = float((p.argmax(axis=1) == y_test).mean())
    print(
        f"trained on {len(y)} samples ({len(train_scans)} scans x {args.copies} + "
        f"{len(fonts)} font digits x {args.copies * 8} + the scans as they are) in "
        f"{time.perf_counter() - started:.0f} s; held-out scans (distorted): accuracy "
        f"{accuracy:.4f}, log loss {log_loss(temperature):.4f} at temperature {temperature}; "
        f"{args.out} {args.out.stat().st_size} bytes"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
