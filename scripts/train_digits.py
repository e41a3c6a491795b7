"""Train the box recogniser's second opinion (ocr/digit_cnn.py): ocr/models/digit_cnn.npz.

    .venv/bin/pip install -e '.[train]'   # PyTorch (CPU) and scikit-learn, for training only
    .venv/bin/python scripts/train_digits.py [--out ocr/models/digit_cnn.npz]

PyTorch (its CPU build) trains the network; the reader runs it with numpy
alone (``ocr/digit_cnn.py``), and this script checks the two agree.
Reproducible: one seed for every random choice (torch deterministic);
the same packages and fonts give the same file. Training data, nothing
downloaded, all distorted as pens, scanners and FAX lines distort digits
(``_distort``: turn, slant, squeeze, thicker and thinner
strokes, dropped lines, specks, and for half of them (``--standard``) the
two-rows-in-one line of a standard-resolution FAX):

* digits drawn from pen strokes (``scripts/pen_digits.py``), several ways of
  writing each;
* scikit-learn's bundled scans of real handwriting (``load_digits``, UCI
  optdigits: 1,797 digits of 43 writers, as 8×8 counts blown up again);
* digits set in fonts from Debian's font packages (``TRAIN_FONTS``);
* rows of the desk's own form's digit boxes with a pen digit in each box
  (``_box_row``: small to overrunning the box lines, slanted, fine to bold
  strokes), sampled as a FAX machine samples them at either resolution and
  cut out by the reader's own ``zonal.strip_cells``: what the network is
  given at run time, line remnants, strokes lost with a line and a
  neighbour's overrun included. A change to the reader's cutting wants
  the model trained again.

The FAX corpus's handwriting synthesis and fonts (bench/) are left out: the
bench measures the recogniser on writing and faces it was not trained on.
Held out: a fifth of the scikit-learn scans, and pen digits and form rows
of their own seed; the accuracy on them is printed, with the model's size.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pen_digits

from madoguchi.ocr.digit_cnn import MODEL_PATH, DigitNet, features, save_model
from madoguchi.ocr.form import DEFAULT_LAYOUT
from madoguchi.ocr.zonal import _CROP_PX_PER_MM, _strip_rect, strip_cells

SEED = 20261204
STANDARD = 0.5


# Debian's font packages; the corpus's fonts (bench/fax_corpus.py) are not among them.
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
    # The reader cuts a box's digit to its ink (ocr/zonal.py): so is the digit here, and the
    # specks fall within it (sprinkled over the whole canvas, they made every digit small).
    ys, xs = np.nonzero(out)
    if len(ys):
        out = out[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
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


def _set(masks: list[tuple[np.ndarray, int]], copies: int, rng: np.random.Generator,
         standard: float) -> tuple[np.ndarray, np.ndarray]:
    x, y = [], []
    for mask, label in masks:
        for _ in range(copies):
            size = int(rng.integers(18, 90))
            x.append(features(_distort(mask, rng, size, standard)))
            y.append(label)
    return np.stack(x), np.array(y)


def _pen_set(count: int, rng: np.random.Generator,
             standard: float) -> tuple[np.ndarray, np.ndarray]:
    digits = [(pen_digits.pen_digit(i % 10, rng), i % 10) for i in range(count)]
    return _set(digits, 1, rng, standard)


# Box rows are drawn at this many px/mm, then sampled as a FAX machine does.
_ROW_PX_PER_MM = 20.0
_FAX_X_PX_PER_MM = 204 / 25.4
_STRIP_PX_PER_MM = _CROP_PX_PER_MM  # the reader's own (zonal.box_cells)


def _pen_in_box(digit: int, rng: np.random.Generator, box_w: float, box_h: float) -> np.ndarray:
    """A pen digit sized for a box of ``box_w`` × ``box_h`` px: small to overrunning, slanted,
    its strokes fine to bold (a ballpoint's 0.1 mm to a felt tip's)."""
    height = max(12, round(box_h * rng.uniform(0.5, 1.15)))
    ink = pen_digits.pen_digit(digit, rng, height)
    shear = rng.uniform(-0.1, 0.4)
    h, w = ink.shape
    pad = round(abs(shear) * h) + 2
    image = Image.new("L", (w + 2 * pad, h), 0)
    image.paste(Image.fromarray(np.where(ink, 255, 0).astype(np.uint8)), (pad, 0))
    slanted = image.transform(image.size, Image.Transform.AFFINE,
                              (1, shear, -shear * h / 2, 0, 1, 0), Image.Resampling.BILINEAR)
    out = np.asarray(slanted) >= 128
    target_w = box_w * rng.uniform(0.45, 0.95) * (0.6 if digit == 1 else 1.0)
    if out.shape[1] > target_w * 1.6:
        image = Image.fromarray(np.where(out, 255, 0).astype(np.uint8))
        out = np.asarray(image.resize((max(2, round(target_w * 1.6)), out.shape[0]),
                                      Image.Resampling.BILINEAR)) >= 128
    thinner = int(rng.integers(0, 4))
    if thinner and out.sum() > 200:
        eroded = _erode(out, thinner)
        out = eroded if eroded.sum() > out.sum() * 0.25 else out
    return out


def _fax_strip(canvas: np.ndarray, rng: np.random.Generator, standard: bool) -> np.ndarray:
    """The digit row drawn at ``_ROW_PX_PER_MM`` (ink True) as the reader gets it back from
    a FAX: sampled at 204 × 98 or 204 × 196 dpi (grey, noise, a 1-bit threshold, now and
    then a lost scan line, specks), stretched to square pixels and brought level to
    ``_STRIP_PX_PER_MM`` as ``zonal.box_cells`` does (bilinear, grey under 150 is ink)."""
    h, w = canvas.shape
    shift = int(rng.integers(0, 6))
    image = Image.fromarray(np.where(canvas, 255, 0).astype(np.uint8))
    image = image.rotate(rng.uniform(-0.4, 0.4), Image.Resampling.BILINEAR,
                         translate=(0, shift))
    y_ppm = _FAX_X_PX_PER_MM / (2 if standard else 1)
    size = (round(w / _ROW_PX_PER_MM * _FAX_X_PX_PER_MM), round(h / _ROW_PX_PER_MM * y_ppm))
    grey = np.asarray(image.resize(size, Image.Resampling.BOX), dtype=np.float32)
    grey = grey + rng.normal(0, rng.uniform(8, 40), grey.shape)
    lines = grey >= rng.uniform(95, 155)
    if rng.random() < 0.2:
        lines[rng.random(lines.shape[0]) < 0.05] = False
    lines |= rng.random(lines.shape) < rng.uniform(0, 0.002)
    if standard:
        lines = np.repeat(lines, 2, axis=0)
    square = Image.fromarray(np.where(lines, 0, 255).astype(np.uint8))
    out = square.resize((round(w / _ROW_PX_PER_MM * _STRIP_PX_PER_MM),
                         round(h / _ROW_PX_PER_MM * _STRIP_PX_PER_MM)), Image.Resampling.BILINEAR)
    strip: np.ndarray = np.asarray(out) < 150
    return strip


def _box_row(rng: np.random.Generator, standard: bool) -> tuple[list[np.ndarray], list[int]]:
    """One digit row of the desk's form with a pen digit in every box, FAXed, cut by the
    reader's own ``zonal.strip_cells``: its glyphs (box lines' remnants, a stroke lost on a
    line, a neighbour's overrun and all) and their digits."""
    rect = _strip_rect(DEFAULT_LAYOUT)
    r = _ROW_PX_PER_MM
    canvas = np.zeros((round(rect.height * r), round(rect.width * r)), dtype=bool)
    line = max(2, round(rng.uniform(0.2, 0.4) * r))
    digits = [int(d) for d in rng.integers(0, 10, DEFAULT_LAYOUT.count)]
    for box, digit in zip(DEFAULT_LAYOUT.boxes, digits, strict=True):
        x0, x1 = round((box.x0 - rect.x0) * r), round((box.x1 - rect.x0) * r)
        y0, y1 = round((box.y0 - rect.y0) * r), round((box.y1 - rect.y0) * r)
        for ys, xs in ((slice(y0 - line // 2, y0 + line - line // 2), slice(x0, x1 + 1)),
                       (slice(y1 - line // 2, y1 + line - line // 2), slice(x0, x1 + 1)),
                       (slice(y0, y1 + 1), slice(x0 - line // 2, x0 + line - line // 2)),
                       (slice(y0, y1 + 1), slice(x1 - line // 2, x1 + line - line // 2))):
            canvas[ys, xs] = True
        ink = _pen_in_box(digit, rng, x1 - x0, y1 - y0)
        h, w = ink.shape
        cx = (x0 + x1) / 2 + rng.uniform(-0.1, 0.1) * (x1 - x0)
        cy = (y0 + y1) / 2 + rng.uniform(-0.08, 0.08) * (y1 - y0)
        top, left = max(0, round(cy - h / 2)), max(0, round(cx - w / 2))
        part = ink[: canvas.shape[0] - top, : canvas.shape[1] - left]
        canvas[top : top + part.shape[0], left : left + part.shape[1]] |= part
    glyphs, labels = [], []
    for cell, digit in zip(strip_cells(_fax_strip(canvas, rng, standard)), digits, strict=True):
        if cell.glyph.size and cell.glyph.any():
            glyphs.append(cell.glyph)
            labels.append(digit)
    return glyphs, labels


def _box_rows(job: tuple[int, int, float]) -> tuple[np.ndarray, np.ndarray]:
    seed, rows, standard = job
    rng = np.random.default_rng(seed)
    x, y = [], []
    for _ in range(rows):
        glyphs, labels = _box_row(rng, bool(rng.random() < standard))
        x += [features(g) for g in glyphs]
        y += labels
    return np.stack(x), np.array(y)


def _box_row_set(rows: int, seed: int, standard: float,
                 workers: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` digit rows (``_box_row``), made in chunks of their own seeds (the same set
    however many workers make it)."""
    from multiprocessing import Pool

    chunk = 50
    jobs = [(seed * 1000 + i, min(chunk, rows - start), standard)
            for i, start in enumerate(range(0, rows, chunk))]
    with Pool(workers) as pool:
        parts = pool.map(_box_rows, jobs)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _network(torch: Any) -> Any:
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 96), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(96, 10),
    )


def main(argv: list[str] | None = None) -> int:
    import torch
    from sklearn.datasets import load_digits

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--pen", type=int, default=30000, help="pen-drawn digits")
    parser.add_argument("--copies", type=int, default=12, help="distortions per scan")
    parser.add_argument("--rows", type=int, default=5000,
                        help="digit rows of the form, FAXed and cut by the reader (12 digits each)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--standard", type=float, default=STANDARD,
                        help="share of digits degraded as at standard resolution")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(SEED)

    digits = load_digits()
    order = rng.permutation(len(digits.target))
    held = set(order[: len(order) // 5].tolist())
    scans = [(_sklearn_bitmap(digits.data[i]), int(digits.target[i]))
             for i in range(len(order))]
    fonts = [(_font_digit(f, str(d)), d)
             for f in TRAIN_FONTS if Path(f).exists() for d in range(10)]
    parts = [
        _pen_set(args.pen, rng, args.standard),
        _set([s for i, s in enumerate(scans) if i not in held], args.copies, rng, args.standard),
        _set(fonts, args.copies * 6, rng, args.standard),
        _box_row_set(args.rows, SEED, args.standard, args.threads),
    ]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    held_rng = np.random.default_rng(SEED + 1)
    x_scan, y_scan = _set([s for i, s in enumerate(scans) if i in held], 4, held_rng,
                          args.standard)
    x_pen, y_pen = _pen_set(4000, held_rng, args.standard)
    x_row, y_row = _box_row_set(max(1, args.rows // 10), SEED + 1, args.standard, args.threads)
    made = time.perf_counter() - started

    net = _network(torch)
    optimiser = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-5)
    steps = args.epochs * ((len(y) + 255) // 256)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps)
    xt = torch.from_numpy(x[:, None])
    yt = torch.from_numpy(y.astype(np.int64))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.02)
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(yt))
        total = 0.0
        for start in range(0, len(yt), 256):
            idx = perm[start : start + 256]
            optimiser.zero_grad()
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        print(f"epoch {epoch + 1}: loss {total / len(yt):.4f}", flush=True)
    net.eval()

    layers = list(net)
    convs = tuple((m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy())
                  for m in layers if isinstance(m, torch.nn.Conv2d))
    dense = tuple((m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy())
                  for m in layers if isinstance(m, torch.nn.Linear))
    model = DigitNet(convs, dense)
    x_cal = np.concatenate([x_scan, x_pen, x_row])
    y_cal = np.concatenate([y_scan, y_pen, y_row])
    with torch.no_grad():
        reference = net(torch.from_numpy(x_cal[:256, None])).numpy()
    gap = float(np.abs(reference - model.logits(x_cal[:256])).max())
    assert gap < 1e-3, f"numpy and torch disagree by {gap}"

    logits = np.concatenate([model.logits(x_cal[i : i + 512]) for i in range(0, len(y_cal), 512)])

    def log_loss(t: float) -> float:
        a = logits / t
        a = a - a.max(axis=1, keepdims=True)
        log_p = a - np.log(np.exp(a).sum(axis=1, keepdims=True))
        return float(-np.mean(log_p[np.arange(len(y_cal)), y_cal]))

    temperature = min((0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 2.0), key=log_loss)
    model = DigitNet(convs, dense, temperature)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, args.out)
    # The held-out logits are the ones computed above (a temperature moves no argmax).
    right = logits.argmax(axis=1) == y_cal
    pen_end = len(y_scan) + len(y_pen)
    for name, hits in (("scikit-learn scans", right[: len(y_scan)]),
                       ("pen digits", right[len(y_scan) : pen_end]),
                       ("form rows, cut by the reader", right[pen_end:])):
        print(f"held out, {name} (distorted): accuracy {hits.mean():.4f} of {len(hits)}")
    print(
        f"trained on {len(y)} digits ({args.pen} pen-drawn, {len(scans) - len(held)} scans x "
        f"{args.copies}, {len(fonts)} font digits x {args.copies * 6}, {len(parts[3][1])} cut from "
        f"{args.rows} form rows; made in {made:.0f} s) "
        f"in {time.perf_counter() - started:.0f} s; temperature {temperature}, log loss "
        f"{log_loss(temperature):.4f}; {args.out} {args.out.stat().st_size} bytes"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
