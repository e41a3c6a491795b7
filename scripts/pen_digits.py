"""Digits drawn with a pen, for training the box recogniser (scripts/train_digits.py).

Each digit is built from a few parametric parts (arcs, bars, loops) whose
sizes, openings and joins are drawn at random, in the several ways people
write it (a 1 with or without its flag or foot, an open or closed 4, a 7
with a hooked start or a crossbar, a 9 with a straight or a curved tail,
an 8 as one figure of eight or two stacked loops). The outline points are
jittered, rounded off (Chaikin's corner cutting), warped by a smooth random
displacement field, and drawn as short segments whose width drifts along
the stroke as a pen's pressure does.

Written for training only and apart from the FAX corpus's handwriting
(bench/handwriting.py): its shapes, smoothing and pen are its own, so the
bench measures the recogniser on writing it was not trained on.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from PIL import Image, ImageDraw

Point = tuple[float, float]


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float,
         n: int = 14) -> list[Point]:
    """Points on an ellipse from angle a0 to a1 (degrees; y down, so 90 is the bottom)."""
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in np.linspace(a0, a1, n)]


def _shapes(digit: int, r: np.random.Generator) -> list[list[Point]]:
    """The strokes of one way of writing ``digit`` in a unit box (x right, y down)."""
    u = r.uniform
    if digit == 0:
        start = u(-120, -50)
        return [_arc(0.5, 0.5, u(0.24, 0.42), u(0.42, 0.49), start, start + 360 + u(-25, 35), 20)]
    if digit == 1:
        x_top = 0.5 + u(-0.06, 0.1)
        stem = [(x_top, u(0.0, 0.05)), (0.5 + u(-0.08, 0.04), u(0.95, 1.0))]
        if r.random() < 0.55:
            stem.insert(0, (x_top - u(0.15, 0.3), u(0.12, 0.3)))
        strokes = [stem]
        if r.random() < 0.15:
            y = stem[-1][1]
            strokes.append([(stem[-1][0] - u(0.15, 0.25), y), (stem[-1][0] + u(0.15, 0.25), y)])
        return strokes
    if digit == 2:
        top = _arc(0.5, u(0.22, 0.33), u(0.22, 0.38), u(0.16, 0.3), u(160, 205), u(350, 400), 12)
        foot_y = u(0.92, 1.0)
        corner = (u(0.08, 0.22), foot_y)
        stroke = [*top, corner]
        if r.random() < 0.2:  # a small loop where the diagonal meets the foot
            stroke += [(corner[0] + 0.08, foot_y - 0.1), (corner[0] + 0.02, foot_y - 0.02)]
        return [[*stroke, (u(0.8, 0.95), foot_y + u(-0.04, 0.02))]]
    if digit == 3:
        mid = u(0.44, 0.54)
        upper = _arc(0.48, mid / 2, u(0.26, 0.36), mid / 2, u(190, 220), u(430, 455), 12)
        lower = _arc(0.5, (1 + mid) / 2, u(0.3, 0.4), (1 - mid) / 2, u(265, 285), u(500, 545), 12)
        way = r.random()
        if way < 0.35:  # a flat-topped 3: a bar, a slant back to the middle, the lower bowl
            bar = [(u(0.05, 0.3), u(0.0, 0.06)), (u(0.7, 0.95), u(0.0, 0.04))]
            bowl = _arc(0.5, (1 + mid) / 2, u(0.3, 0.42), (1 - mid) / 2, u(210, 280),
                        u(480, 545), 12)
            return [[*bar, (u(0.2, 0.55), mid), *bowl]]
        if way < 0.55:  # the upper bowl drawn with a corner at its top right
            corner = (u(0.7, 0.88), u(0.02, 0.1))
            start = (u(0.12, 0.3), u(0.05, 0.2))
            return [[start, (0.5, 0.0), corner, (u(0.4, 0.55), mid), *lower[1:]]]
        return [upper + lower[1:]]
    if digit == 4:
        bar_y = u(0.58, 0.72)
        stem_x = u(0.6, 0.75)
        if r.random() < 0.5:  # closed: the diagonal meets the stem's top
            first = [(stem_x - u(0.0, 0.05), 0.0), (u(0.05, 0.18), bar_y), (u(0.85, 1.0), bar_y)]
            return [first, [(stem_x, u(0.15, 0.4)), (stem_x + u(-0.05, 0.03), 1.0)]]
        if r.random() < 0.3:  # one stroke: down the slant, across, back up and down the stem
            top = (stem_x - u(0.0, 0.08), u(0.0, 0.05))
            return [[top, (u(0.05, 0.2), bar_y), (u(0.85, 1.0), bar_y)],
                    [top, (stem_x + u(-0.05, 0.03), 1.0)]]
        first = [(u(0.15, 0.35), 0.0), (u(0.1, 0.2), bar_y), (u(0.85, 1.0), bar_y)]
        return [first, [(stem_x, u(0.0, 0.15)), (stem_x + u(-0.05, 0.03), 1.0)]]
    if digit == 5:
        bar = [(u(0.75, 0.92), u(0.0, 0.06)), (u(0.2, 0.32), u(0.02, 0.07))]
        neck = (u(0.15, 0.3), u(0.38, 0.5))
        bowl = _arc(0.5, u(0.65, 0.72), u(0.3, 0.38), u(0.26, 0.33), u(215, 240), u(495, 530), 12)
        body = [bar[1], neck, *bowl[1:]]
        if r.random() < 0.5:
            return [body, bar]
        return [bar + body[1:]]
    if digit == 6:
        loop_y = u(0.62, 0.72)
        ry = 1 - loop_y - 0.02
        start = (u(0.6, 0.85), u(0.0, 0.08))
        down = [start, (u(0.3, 0.45), u(0.15, 0.3)), (u(0.15, 0.25), loop_y - 0.05)]
        loop = _arc(0.5, loop_y, u(0.28, 0.36), ry, 180, 180 + 360 + u(-40, 10), 16)
        return [down + loop]
    if digit == 7:
        bar_y = u(0.0, 0.08)
        # Some bars are short: a quick hand, or a bar the box's top line took half of.
        left = u(0.05, 0.2) if r.random() < 0.75 else u(0.35, 0.6)
        stroke = [(left, bar_y + u(-0.02, 0.04)), (u(0.82, 0.98), bar_y)]
        stroke.append((u(0.3, 0.55), u(0.95, 1.0)))
        if r.random() < 0.25:  # a hooked start
            stroke.insert(0, (stroke[0][0] - 0.02, bar_y + u(0.12, 0.22)))
        strokes = [stroke]
        if r.random() < 0.2:  # the continental crossbar
            y = u(0.45, 0.6)
            strokes.append([(u(0.3, 0.45), y), (u(0.72, 0.85), y)])
        return strokes
    if digit == 8:
        waist = u(0.42, 0.52)
        if r.random() < 0.4:  # two loops, one on the other
            top = _arc(0.5, waist / 2, u(0.22, 0.3), waist / 2, 90, 450, 14)
            bottom = _arc(0.5, (1 + waist) / 2, u(0.28, 0.36), (1 - waist) / 2, 270, 630, 14)
            return [top, bottom]
        w1, w2 = u(0.22, 0.32), u(0.28, 0.38)
        return [[(0.5, waist), (0.5 - w1, waist * 0.55), (0.5 - w1 * 0.6, 0.03),
                 (0.5 + w1 * 0.6, 0.03), (0.5 + w1, waist * 0.55), (0.5, waist),
                 (0.5 - w2, waist + (1 - waist) * 0.5), (0.5 - w2 * 0.6, 0.98),
                 (0.5 + w2 * 0.6, 0.98), (0.5 + w2, waist + (1 - waist) * 0.5), (0.5, waist)]]
    # 9
    loop_y = u(0.26, 0.36)
    rx, ry = u(0.26, 0.36), loop_y - 0.02
    right = 0.5 + rx
    loop = _arc(0.5, loop_y, rx, ry, u(-20, 10), 360 + u(-10, 15), 16)
    if r.random() < 0.5:
        tail = [(right - u(0.0, 0.04), loop_y), (right - u(0.02, 0.15), 1.0)]
    else:
        tail = [(right, loop_y), (right - 0.05, 0.75), (0.45, 0.98), (u(0.15, 0.3), 0.9)]
    return [loop + tail[1:]] if r.random() < 0.6 else [loop, tail]


def _chaikin(points: list[Point], rounds: int) -> list[Point]:
    """Corner cutting: each segment's quarter points, keeping both ends."""
    for _ in range(rounds):
        if len(points) < 3:
            return points
        cut = [points[0]]
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            cut += [(0.75 * x0 + 0.25 * x1, 0.75 * y0 + 0.25 * y1),
                    (0.25 * x0 + 0.75 * x1, 0.25 * y0 + 0.75 * y1)]
        cut.append(points[-1])
        points = cut
    return points


def _warp(ink: np.ndarray, r: np.random.Generator, strength: float) -> np.ndarray:
    """A smooth random displacement of the ink (elastic, as a hand's wobble)."""
    h, w = ink.shape
    coarse = r.normal(0, strength, (2, 4, 4)).astype(np.float32)
    fields = [np.asarray(Image.fromarray(c).resize((w, h), Image.Resampling.BICUBIC))
              for c in coarse]
    yy, xx = np.mgrid[0:h, 0:w]
    sy = np.clip(np.round(yy + fields[0]), 0, h - 1).astype(int)
    sx = np.clip(np.round(xx + fields[1]), 0, w - 1).astype(int)
    warped: np.ndarray = ink[sy, sx]
    return warped


def pen_digit(digit: int, r: np.random.Generator, height: int = 80) -> np.ndarray:
    """One handwritten ``digit`` as ink (True), about ``height`` px tall, cut to its ink."""
    width = int(height * r.uniform(0.55, 0.85))
    margin = height // 4
    image = Image.new("L", (width + 2 * margin, height + 2 * margin), 0)
    draw = ImageDraw.Draw(image)
    pen = r.uniform(0.035, 0.12) * height  # stroke width: a fine pen to a felt tip
    jitter = r.uniform(0.005, 0.03)
    for stroke in _shapes(digit, r):
        points = [(x + r.normal(0, jitter), y + r.normal(0, jitter)) for x, y in stroke]
        points = _chaikin(points, 2)
        pressure = 1.0
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            pressure = float(np.clip(pressure + r.normal(0, 0.12), 0.55, 1.35))
            draw.line([(margin + x0 * width, margin + y0 * height),
                       (margin + x1 * width, margin + y1 * height)],
                      fill=255, width=max(1, round(pen * pressure)))
            half = pen * pressure / 2
            draw.ellipse([margin + x1 * width - half, margin + y1 * height - half,
                          margin + x1 * width + half, margin + y1 * height + half], fill=255)
    ink = _warp(np.asarray(image) >= 128, r, r.uniform(0.5, 2.5) * height / 80)
    ys, xs = np.nonzero(ink)
    if len(ys) == 0:
        return np.ones((4, 2), dtype=bool)
    cut: np.ndarray = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return cut
