"""Handwritten digits for the FAX corpus: strokes of a pen, in several writers' styles.

Each digit is a skeleton of strokes (polylines in a unit box, y down), in
one of a few ways people write it (a 1 with or without its flag, an open
or closed 4, a 7 with a bar). A *writer* fixes the way of each digit, a
slant, a width, a size in the box, a pen (stroke width) and how hard they
press; every digit they write is then jittered, smoothed (Catmull-Rom) and
drawn as short segments whose width follows the pressure, so strokes thin
out and thicken as a pen's do. Large writers overrun the box lines.

This is the corpus's own synthesis, kept apart from what the desk's digit
recogniser was trained on (``scripts/train_digits.py``: pen digits of its
own, ``scripts/pen_digits.py``, scikit-learn's scanned handwriting and
fonts), so the bench measures it on writing it never saw.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from reportlab.pdfgen.canvas import Canvas

from madoguchi.ocr import form

Point = tuple[float, float]
Stroke = tuple[Point, ...]

# Ways of writing each digit: a tuple of strokes each.
_WAYS: dict[str, tuple[tuple[Stroke, ...], ...]] = {
    "0": (
        (((0.5, 0.0), (0.15, 0.2), (0.08, 0.55), (0.25, 0.92), (0.55, 1.0), (0.85, 0.75),
          (0.9, 0.35), (0.7, 0.05), (0.48, 0.02)),),
        (((0.55, 0.02), (0.2, 0.15), (0.12, 0.6), (0.4, 1.0), (0.8, 0.8), (0.88, 0.3),
          (0.6, 0.0), (0.35, 0.1)),),
    ),
    "1": (
        (((0.55, 0.0), (0.5, 1.0)),),
        (((0.25, 0.22), (0.55, 0.0), (0.52, 1.0)),),
        (((0.3, 0.2), (0.55, 0.0), (0.55, 1.0)), ((0.3, 1.0), (0.8, 1.0))),
    ),
    "2": (
        (((0.1, 0.28), (0.3, 0.04), (0.65, 0.02), (0.88, 0.22), (0.8, 0.45), (0.1, 0.98),
          (0.95, 0.97)),),
        (((0.12, 0.2), (0.5, 0.0), (0.85, 0.2), (0.6, 0.6), (0.1, 1.0), (0.3, 0.85),
          (0.55, 0.95), (0.95, 0.98)),),
    ),
    "3": (
        (((0.1, 0.12), (0.5, 0.0), (0.85, 0.2), (0.45, 0.48), (0.9, 0.7), (0.6, 1.0),
          (0.1, 0.9)),),
        (((0.1, 0.02), (0.9, 0.02), (0.4, 0.42), (0.85, 0.6), (0.75, 0.95), (0.1, 0.92)),),
    ),
    "4": (
        (((0.65, 0.0), (0.05, 0.68), (0.95, 0.68)), ((0.7, 0.3), (0.7, 1.0))),
        (((0.7, 1.0), (0.7, 0.0), (0.05, 0.7), (0.95, 0.7)),),
        (((0.2, 0.0), (0.12, 0.6), (0.9, 0.6)), ((0.72, 0.1), (0.7, 1.0))),
    ),
    "5": (
        (((0.85, 0.02), (0.22, 0.02), (0.15, 0.45), (0.6, 0.38), (0.9, 0.65), (0.62, 1.0),
          (0.1, 0.9)),),
        (((0.25, 0.02), (0.15, 0.45), (0.6, 0.38), (0.9, 0.65), (0.62, 1.0), (0.1, 0.9)),
         ((0.25, 0.03), (0.88, 0.0))),
    ),
    "6": (
        (((0.75, 0.0), (0.3, 0.3), (0.12, 0.7), (0.4, 1.0), (0.8, 0.85), (0.8, 0.6),
          (0.45, 0.48), (0.15, 0.68)),),
        (((0.6, 0.0), (0.18, 0.55), (0.3, 0.95), (0.75, 0.95), (0.8, 0.62), (0.4, 0.55),
          (0.2, 0.7)),),
    ),
    "7": (
        (((0.05, 0.02), (0.95, 0.02), (0.4, 1.0)),),
        (((0.05, 0.02), (0.95, 0.02), (0.45, 1.0)), ((0.3, 0.52), (0.82, 0.5))),
        (((0.08, 0.2), (0.1, 0.02), (0.9, 0.04), (0.55, 0.55), (0.45, 1.0)),),
    ),
    "8": (
        (((0.5, 0.48), (0.15, 0.25), (0.5, 0.0), (0.85, 0.25), (0.5, 0.48), (0.1, 0.75),
          (0.5, 1.0), (0.9, 0.75), (0.5, 0.48)),),
        (((0.8, 0.1), (0.5, 0.0), (0.2, 0.2), (0.8, 0.7), (0.5, 1.0), (0.15, 0.75),
          (0.8, 0.25), (0.8, 0.1)),),
    ),
    "9": (
        (((0.85, 0.3), (0.5, 0.5), (0.15, 0.3), (0.5, 0.0), (0.85, 0.25), (0.8, 1.0)),),
        (((0.85, 0.25), (0.5, 0.48), (0.15, 0.28), (0.45, 0.0), (0.85, 0.2), (0.75, 0.7),
          (0.4, 1.0)),),
    ),
}

STYLES = ("neat", "quick", "large", "small_slanted", "heavy")


@dataclass(frozen=True)
class Writer:
    """How one person writes digits: a way per digit, slant, size, pen."""

    style: str
    ways: dict[str, int]
    slant: float  # x shift per unit of height (positive leans right)
    width: float  # share of the box's width a digit takes
    height: float  # share of the box's height (above 1 overruns the box lines)
    pen_mm: float  # stroke width at full pressure
    pressure: float  # how much the width varies along a stroke (0..1)
    jitter: float  # how far each point wanders, per digit


def writer(rng: random.Random, style: str | None = None) -> Writer:
    """A writer of ``style`` (one of STYLES; random when None) with its own habits."""
    style = style or rng.choice(STYLES)
    ways = {d: rng.randrange(len(w)) for d, w in _WAYS.items()}
    base = {
        "neat": (0.05, 0.62, 0.72, 0.45, 0.2, 0.025),
        "quick": (0.22, 0.6, 0.8, 0.4, 0.5, 0.05),
        "large": (0.1, 0.8, 1.08, 0.55, 0.3, 0.035),
        "small_slanted": (0.3, 0.45, 0.55, 0.35, 0.35, 0.03),
        "heavy": (0.08, 0.7, 0.85, 0.85, 0.25, 0.035),
    }[style]
    slant, width, height, pen, pressure, jitter = base
    return Writer(
        style=style,
        ways=ways,
        slant=slant + rng.uniform(-0.08, 0.08),
        width=width * rng.uniform(0.9, 1.1),
        height=height * rng.uniform(0.93, 1.07),
        pen_mm=pen * rng.uniform(0.8, 1.2),
        pressure=pressure,
        jitter=jitter,
    )


def _catmull_rom(points: list[Point], per_segment: int = 8) -> list[Point]:
    if len(points) < 3:
        a, b = points[0], points[-1]
        return [(a[0] + (b[0] - a[0]) * t / 12, a[1] + (b[1] - a[1]) * t / 12) for t in range(13)]
    pts = [points[0], *points, points[-1]]
    out: list[Point] = []
    for i in range(1, len(pts) - 2):
        p0, p1, p2, p3 = pts[i - 1], pts[i], pts[i + 1], pts[i + 2]
        for s in range(per_segment):
            t = s / per_segment
            t2, t3 = t * t, t * t * t
            out.append(
                tuple(  # type: ignore[arg-type]
                    0.5
                    * (
                        2 * p1[k]
                        + (-p0[k] + p2[k]) * t
                        + (2 * p0[k] - 5 * p1[k] + 4 * p2[k] - p3[k]) * t2
                        + (-p0[k] + 3 * p1[k] - 3 * p2[k] + p3[k]) * t3
                    )
                    for k in (0, 1)
                )
            )
    out.append(points[-1])
    return out


def write_digit(c: Canvas, who: Writer, digit: str, box: form.Rect, rng: random.Random) -> None:
    """``digit`` in ``box`` (millimetres), as ``who`` writes it."""
    strokes = _WAYS[digit][who.ways[digit]]
    h = box.height * who.height * rng.uniform(0.94, 1.06)
    w = box.width * who.width * rng.uniform(0.9, 1.1)
    if digit == "1":
        w *= 0.6
    cx = (box.x0 + box.x1) / 2 + rng.uniform(-0.08, 0.08) * box.width
    cy = (box.y0 + box.y1) / 2 + rng.uniform(-0.06, 0.06) * box.height
    turn = math.radians(rng.uniform(-4, 4))
    c.setLineCap(1)
    c.setLineJoin(1)
    for stroke in strokes:
        pts = [
            (x + rng.gauss(0, who.jitter), y + rng.gauss(0, who.jitter)) for x, y in stroke
        ]
        smooth = _catmull_rom(pts)
        n = len(smooth)
        phase = rng.uniform(0, math.pi)
        mm_pts = []
        for x, y in smooth:
            u = (x - 0.5) * w + (0.5 - y) * who.slant * h
            v = (y - 0.5) * h
            mm_pts.append(
                (cx + u * math.cos(turn) - v * math.sin(turn),
                 cy + u * math.sin(turn) + v * math.cos(turn))
            )
        for i in range(n - 1):
            press = 1.0 - who.pressure * (0.5 + 0.5 * math.sin(phase + 3.0 * i / n))
            if i < 2 or i > n - 4:
                press *= 0.75  # the pen lands and lifts
            c.setLineWidth(max(0.12, who.pen_mm * press) * 72 / 25.4)
            (x0, y0), (x1, y1) = mm_pts[i], mm_pts[i + 1]
            c.line(*form.to_pdf(x0, y0), *form.to_pdf(x1, y1))


def write_digits(c: Canvas, digits: str, rng: random.Random, style: str | None = None) -> str:
    """Handwrite ``digits`` into the form's boxes; returns the writer's style."""
    who = writer(rng, style)
    c.setStrokeGray(rng.uniform(0.0, 0.25))  # a ballpoint, a pencil, a felt tip
    for box, digit in zip(form.DIGIT_BOXES_MM, digits, strict=False):
        write_digit(c, who, digit, box, rng)
    c.setStrokeGray(0)
    return who.style
