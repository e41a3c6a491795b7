"""The boxes' second recogniser (ocr/digit_cnn.py): numpy's network is the trained one."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from madoguchi.ocr import digit_cnn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import pen_digits


def _reference_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The textbook loop: 'same' padding, cross-correlation as PyTorch's Conv2d computes it."""
    n, _c, h, wd = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, wd), dtype=np.float64)
    for k in range(w.shape[0]):
        for i in range(h):
            for j in range(wd):
                out[:, k, i, j] = (padded[:, :, i : i + 3, j : j + 3] * w[k]).sum(axis=(1, 2, 3))
        out[:, k] += b[k]
    return out


def test_the_convolution_is_pytorchs_cross_correlation_with_same_padding():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 3, 6, 5)).astype(np.float32)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    assert np.allclose(digit_cnn._conv(x, w, b), _reference_conv(x, w, b), atol=1e-4)
    # An asymmetric kernel tells a convolution from a cross-correlation.
    one = np.zeros((1, 1, 3, 3), dtype=np.float32)
    one[0, 0, 1, 1] = 1.0
    kernel = np.zeros((1, 1, 3, 3), dtype=np.float32)
    kernel[0, 0, 0, 0] = 1.0  # picks the pixel up and to the left
    got = digit_cnn._conv(one, kernel, np.zeros(1, dtype=np.float32))
    assert got[0, 0, 2, 2] == 1.0 and got.sum() == 1.0


def test_features_fit_the_ink_keeping_its_shape():
    tall = np.ones((60, 12), dtype=bool)
    f = digit_cnn.features(tall)
    assert f.shape == (32, 32) and f.dtype == np.float32
    rows, cols = np.nonzero(f > 0.5)
    assert rows.max() - rows.min() + 1 == 24  # scaled to fit 24 px tall, centred
    assert cols.max() - cols.min() + 1 in (4, 5, 6)
    assert not digit_cnn.features(np.zeros((10, 10), dtype=bool)).any()


def test_the_committed_model_is_small_and_gives_probabilities():
    assert digit_cnn.MODEL_PATH.stat().st_size < 400_000
    p = digit_cnn.recognise([np.ones((40, 8), dtype=bool), np.zeros((5, 5), dtype=bool)])
    assert p.shape == (2, 10)
    assert np.allclose(p.sum(axis=1), 1.0) and p.min() >= digit_cnn.PROBABILITY_FLOOR * 0.99
    assert digit_cnn.recognise([]).shape == (0, 10)


@pytest.mark.parametrize("font", [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
])
def test_digits_in_fonts_it_was_not_trained_on_are_read(font):
    glyphs = []
    for d in range(10):
        image = Image.new("L", (120, 140), 255)
        ImageDraw.Draw(image).text((20, 5), str(d), fill=0, font=ImageFont.truetype(font, 96))
        ink = np.asarray(image) < 128
        ys, xs = np.nonzero(ink)
        glyphs.append(ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
    assert digit_cnn.recognise(glyphs).argmax(axis=1).tolist() == list(range(10))


def test_pen_digits_of_an_unseen_seed_are_mostly_read():
    rng = np.random.default_rng(99)  # the trainer's seeds are 20261204 and the next one
    truth = [i % 10 for i in range(200)]
    p = digit_cnn.recognise([pen_digits.pen_digit(d, rng) for d in truth])
    assert (p.argmax(axis=1) == truth).mean() >= 0.95


@pytest.mark.parametrize("standard", [True, False])
def test_form_rows_the_trainer_cuts_with_the_readers_code_are_mostly_read(standard):
    # The trainer's form rows: pen digits in the desk's boxes, FAXed, cut by zonal.strip_cells.
    import train_digits

    rng = np.random.default_rng(99)
    glyphs: list[np.ndarray] = []
    labels: list[int] = []
    for _ in range(12):
        g, y = train_digits._box_row(rng, standard)
        glyphs += g
        labels += y
    assert len(glyphs) >= 12 * 12 * 0.95  # a box cut empty is rare, and left out
    # Box lines are the reader's to take away: no glyph is a box's whole outline.
    assert max(g.shape[1] for g in glyphs) < 9 * 10 * 1.5
    p = digit_cnn.recognise(glyphs)
    assert (p.argmax(axis=1) == labels).mean() >= 0.9
