"""Image clean-up that FAX pages need before anything can read them.

FAX pages are 1-bit, often 204×98 dpi (the aspect fix happens on loading, in
``pages.py``), skewed by the sending machine's feeder, sprinkled with specks
from dust and line noise. Everything here is numpy or Pillow: no OpenCV.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

# Below this share of ink a page is blank (trailing pages of a FAX often are).
BLANK_INK_SHARE = 0.0015


def to_gray(image: Image.Image) -> Image.Image:
    return image if image.mode == "L" else image.convert("L")


def otsu_threshold(gray: np.ndarray) -> int:
    """The grey level that best separates ink from paper (Otsu's method)."""
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 128
    levels = np.arange(256, dtype=np.float64)
    weight_dark = np.cumsum(hist)
    weight_light = total - weight_dark
    cum_mean = np.cumsum(hist * levels)
    mean_all = cum_mean[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean_all * weight_dark - total * cum_mean) ** 2 / (weight_dark * weight_light)
    between = np.nan_to_num(between)
    threshold = int(np.argmax(between))
    # A bilevel page gives a flat optimum; anything between the two levels works.
    return min(max(threshold, 1), 254)


def ink_mask(image: Image.Image) -> np.ndarray:
    """True where there is ink."""
    if image.mode == "1":
        return ~np.asarray(image, dtype=bool)
    gray = np.asarray(to_gray(image))
    return gray <= otsu_threshold(gray)


def binarise(image: Image.Image) -> Image.Image:
    """A 1-bit image (ink black) from anything."""
    if image.mode == "1":
        return image
    return Image.fromarray(~ink_mask(image))


def despeckle(image: Image.Image, size: int = 3) -> Image.Image:
    """Median filter: removes isolated specks smaller than about half the window."""
    return to_gray(image).filter(ImageFilter.MedianFilter(size))


def is_blank(ink: np.ndarray) -> bool:
    """Blank apart from the sending machine's header line at the very top."""
    h = ink.shape[0]
    body = ink[int(h * 0.05) :]
    return body.size == 0 or float(body.mean()) < BLANK_INK_SHARE


def dilate(mask: np.ndarray, steps: int = 1) -> np.ndarray:
    """``mask`` (True = ink) grown by ``steps`` pixels, the eight ways round each pixel."""
    out = mask.copy()
    for _ in range(steps):
        wide = out.copy()
        wide[1:] |= out[:-1]
        wide[:-1] |= out[1:]
        rows = wide.copy()
        wide[:, 1:] |= rows[:, :-1]
        wide[:, :-1] |= rows[:, 1:]
        out = wide
    return out


def block_reduce(ink: np.ndarray, factor: int) -> np.ndarray:
    """Share of ink in each factor×factor block (cropping the ragged edge)."""
    h, w = (ink.shape[0] // factor) * factor, (ink.shape[1] // factor) * factor
    blocks = ink[:h, :w].reshape(h // factor, factor, w // factor, factor)
    shares: np.ndarray = blocks.mean(axis=(1, 3), dtype=np.float32)
    return shares


def skew_angle(ink: np.ndarray, max_angle: float = 4.0, step: float = 0.1) -> float:
    """How far the page is turned counter-clockwise, in degrees, by projection profile.

    Text lines and table rules give sharp peaks in the row histogram only
    when the page is level; the angle whose sheared histogram is sharpest
    wins. A shear is a close enough stand-in for a rotation at a few degrees
    and costs one bincount per angle.
    """
    factor = 4
    small = block_reduce(ink, factor) > 0.25
    ys, xs = np.nonzero(small)
    if len(ys) < 50:
        return 0.0
    if len(ys) > 200_000:
        keep = np.random.default_rng(0).choice(len(ys), 200_000, replace=False)
        ys, xs = ys[keep], xs[keep]
    xs_f = xs.astype(np.float64) - small.shape[1] / 2
    ys_f = ys.astype(np.float64)
    height = small.shape[0]

    def score(angle: float) -> float:
        shifted = np.rint(ys_f + xs_f * math.tan(math.radians(angle))).astype(np.int64)
        shifted = shifted[(shifted >= 0) & (shifted < height)]
        counts = np.bincount(shifted, minlength=height).astype(np.float64)
        return float(np.dot(counts, counts))

    coarse = np.arange(-max_angle, max_angle + 1e-9, 0.5)
    best = max(coarse, key=score)
    fine = np.arange(best - 0.5, best + 0.5 + 1e-9, step)
    return round(float(max(fine, key=score)), 2)


def rotate(image: Image.Image, angle: float) -> Image.Image:
    """Rotate counter-clockwise by ``angle`` degrees, filling with paper white."""
    if abs(angle) < 0.05:
        return image
    if image.mode == "1":
        return image.rotate(angle, resample=Image.Resampling.NEAREST, fillcolor=1)
    return to_gray(image).rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=255)


def deskew(image: Image.Image, ink: np.ndarray | None = None) -> tuple[Image.Image, float]:
    """The page levelled, and the angle it was turned by."""
    mask = ink_mask(image) if ink is None else ink
    angle = skew_angle(mask)
    return rotate(image, -angle), angle


def fix_aspect(image: Image.Image, x_dpi: float, y_dpi: float) -> Image.Image:
    """Stretch to square pixels: standard-resolution FAX lines are twice as tall as wide."""
    if x_dpi <= 0 or y_dpi <= 0 or abs(x_dpi / y_dpi - 1.0) < 0.02:
        return image
    new_h = max(1, round(image.height * x_dpi / y_dpi))
    resample = Image.Resampling.NEAREST if image.mode == "1" else Image.Resampling.BILINEAR
    out = image.resize((image.width, new_h), resample=resample)
    out.info["dpi"] = (x_dpi, x_dpi)
    return out


def remove_streaks(image: Image.Image, ink: np.ndarray) -> tuple[Image.Image, np.ndarray]:
    """Erase vertical streaks: a speck of dirt on the sender's scanner glass.

    The scanner moves the paper past a fixed line of sensors, so dirt draws
    one straight column down the whole page. Nothing printed is inked over
    most of the page's height; such columns are paper.
    """
    streaks = ink.mean(axis=0) > 0.6
    if not streaks.any():
        return image, ink
    cleaned = ink.copy()
    cleaned[:, streaks] = False
    gray = np.array(to_gray(image))
    gray[:, streaks] = 255
    out = Image.fromarray(gray)
    out.info.update(image.info)
    return out, cleaned


def close_vertically(ink: np.ndarray, rows: int = 3) -> np.ndarray:
    """Morphological closing down the columns: rejoin strokes broken between scan lines.

    A standard-resolution FAX samples every other line of a fine one; a thin
    horizontal stroke (the middle of a 3, the bar of a 4) can fall between
    two scan lines and reach us as two halves. A gap of up to ``rows - 1``
    pixels in a column is filled, and nothing else grows.
    """
    half = rows // 2
    if half < 1 or ink.shape[0] == 0:
        return ink.copy()
    h = ink.shape[0]
    grown = np.pad(ink, ((half, half), (0, 0)), constant_values=False)
    dilated = np.zeros_like(ink)
    for d in range(rows):
        dilated |= grown[d : d + h]
    grown = np.pad(dilated, ((half, half), (0, 0)), constant_values=True)
    closed = np.ones_like(ink)
    for d in range(rows):
        closed &= grown[d : d + h]
    return closed
