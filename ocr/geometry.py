"""Where our form lies on a FAX page: its registration marks, and the affine map they give.

The four solid squares in the form's corners are found in a reduced ink
map; the fit from their millimetre positions (``form.py``) to the pixels
they were found at rectifies any part of the form, level and at a chosen
scale, whatever the skew and scaling of the FAX.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from madoguchi.ocr.form import MARK_CENTERS_MM, MARK_SIZE_MM, PAGE_W_MM, Rect


@dataclass(frozen=True)
class FormGeometry:
    """Where the form lies on a page: millimetres on the form to pixels on the image."""

    matrix: np.ndarray  # 2×3, px = matrix @ (x_mm, y_mm, 1)
    marks_found: int

    @property
    def angle(self) -> float:
        """Counter-clockwise turn of the page in degrees."""
        return -math.degrees(math.atan2(self.matrix[1, 0], self.matrix[0, 0]))

    @property
    def px_per_mm(self) -> float:
        return float(np.hypot(self.matrix[0, 0], self.matrix[1, 0]))

    def rectify(self, gray: Image.Image, rect: Rect, px_per_mm: float) -> Image.Image:
        """The part of the form inside ``rect``, level and at ``px_per_mm``."""
        m = self.matrix
        size = (round(rect.width * px_per_mm), round(rect.height * px_per_mm))
        data = (
            m[0, 0] / px_per_mm,
            m[0, 1] / px_per_mm,
            m[0, 0] * rect.x0 + m[0, 1] * rect.y0 + m[0, 2],
            m[1, 0] / px_per_mm,
            m[1, 1] / px_per_mm,
            m[1, 0] * rect.x0 + m[1, 1] * rect.y0 + m[1, 2],
        )
        return gray.transform(
            size,
            Image.Transform.AFFINE,
            data,
            resample=Image.Resampling.BILINEAR,
            fillcolor=255,
        )


def _integral(a: np.ndarray) -> np.ndarray:
    out = np.zeros((a.shape[0] + 1, a.shape[1] + 1), dtype=np.int32)
    np.cumsum(np.cumsum(a, axis=0, dtype=np.int32), axis=1, out=out[1:, 1:])
    return out


def _box_sum(ii: np.ndarray, y0: int, x0: int, y1: int, x1: int) -> int:
    h, w = ii.shape[0] - 1, ii.shape[1] - 1
    y0, y1 = max(0, min(h, y0)), max(0, min(h, y1))
    x0, x1 = max(0, min(w, x0)), max(0, min(w, x1))
    return int(ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0])


def _mark_candidates(solid: np.ndarray, ii: np.ndarray, side: float) -> list[tuple[float, float]]:
    """Centres (row, col) of solid squares about ``side`` wide in a reduced ink map."""
    k = max(2, int(side * 0.6))
    win = ii[k:, k:] - ii[:-k, k:] - ii[k:, :-k] + ii[:-k, :-k]
    ys, xs = np.nonzero(win >= int(0.95 * k * k))
    points = np.stack([ys + k / 2.0, xs + k / 2.0], axis=1) if len(ys) else np.empty((0, 2))
    centres: list[tuple[float, float]] = []
    while len(points) and len(centres) < 12:
        near = np.hypot(*(points - points[0]).T) <= side
        cy, cx = points[near].mean(axis=0)
        points = points[~near]
        half = side / 2
        inner = _box_sum(ii, round(cy - half), round(cx - half), round(cy + half), round(cx + half))
        outer = _box_sum(
            ii,
            round(cy - 1.6 * half),
            round(cx - 1.6 * half),
            round(cy + 1.6 * half),
            round(cx + 1.6 * half),
        )
        inner_area = (2 * half) ** 2
        ring_area = (3.2 * half) ** 2 - inner_area
        # A mark is a filled square standing alone; a QR finder pattern or a
        # bold glyph has white inside or ink around.
        if inner >= 0.7 * inner_area and (outer - inner) <= 0.12 * ring_area:
            centres.append((float(cy), float(cx)))
    return centres


def find_form(ink: np.ndarray, px_per_mm: float | None = None) -> FormGeometry | None:
    """Locate our form's registration marks; None when this is not our form."""
    h, w = ink.shape
    ppm = px_per_mm or w / PAGE_W_MM
    factor = max(1, int(MARK_SIZE_MM * ppm / 10))
    h_r, w_r = (h // factor) * factor, (w // factor) * factor
    reduced = (
        ink[:h_r, :w_r]
        .reshape(h_r // factor, factor, w_r // factor, factor)
        .mean(axis=(1, 3), dtype=np.float32)
    )
    solid = reduced > 0.6
    ii = _integral(solid)
    side = MARK_SIZE_MM * ppm / factor
    centres = _mark_candidates(solid, ii, side)
    if len(centres) < 3:
        return None

    rh, rw = solid.shape
    form_pts: list[tuple[float, float]] = []
    img_pts: list[tuple[float, float]] = []
    for fx, fy in MARK_CENTERS_MM:
        # Expect each mark in its own corner of the page, allowing for
        # scaling, a header band pushed in at the top, and skew.
        want_left, want_top = fx < PAGE_W_MM / 2, fy < 150
        in_corner = [
            (cy, cx)
            for cy, cx in centres
            if (cx < rw * 0.3 if want_left else cx > rw * 0.7)
            and (cy < rh * 0.3 if want_top else cy > rh * 0.7)
        ]
        if not in_corner:
            continue
        corner_y = 0.0 if want_top else float(rh)
        corner_x = 0.0 if want_left else float(rw)
        cy, cx = min(in_corner, key=lambda p: math.hypot(p[0] - corner_y, p[1] - corner_x))
        u, v = _refine_centre(ink, cx * factor, cy * factor, MARK_SIZE_MM * ppm)
        form_pts.append((fx, fy))
        img_pts.append((u, v))
    if len(form_pts) < 3:
        return None
    src = np.array([[x, y, 1.0] for x, y in form_pts])
    dst = np.array(img_pts)
    solution, *_ = np.linalg.lstsq(src, dst, rcond=None)
    matrix = solution.T
    geometry = FormGeometry(matrix=matrix, marks_found=len(form_pts))
    residual = np.abs(src @ solution - dst).max() / ppm
    sx = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    sy = float(np.hypot(matrix[0, 1], matrix[1, 1]))
    if (
        residual > 2.5
        or not 0.6 < sx / ppm < 1.6
        or abs(sx / sy - 1) > 0.12
        or abs(geometry.angle) > 8
    ):
        return None
    return geometry


def _refine_centre(ink: np.ndarray, u: float, v: float, side: float) -> tuple[float, float]:
    half = int(side * 0.8)
    x0, y0 = max(0, int(u) - half), max(0, int(v) - half)
    window = ink[y0 : int(v) + half, x0 : int(u) + half]
    ys, xs = np.nonzero(window)
    if len(ys) == 0:
        return u, v
    return x0 + float(xs.mean()), y0 + float(ys.mean())


def px_per_mm(image: Image.Image) -> float | None:
    """Pixels per millimetre from the image's resolution, None when it gives none."""
    dpi = image.info.get("dpi")
    if isinstance(dpi, tuple) and dpi and float(dpi[0]) > 0:
        return float(dpi[0]) / 25.4
    return None
