"""PP-OCR's text recogniser (RapidOCR's model, run by onnxruntime) on the digit boxes.

Each box's ink is set on its own small white image; the twelve go through
the recognition network in one batch. The network answers, for each time
step of its CTC output, a probability for each of its 18,000 characters;
a box's probability for digit d is the highest that any step gives d (its
ASCII or full-width form). What the network gives to letters and blanks
is left out, so the ten need not sum to one: a box that holds no clear
digit scores low for all of them, and the decision sees it.

The model ships inside PyPI's ``rapidocr`` wheel (PP-OCRv6 small, 21 MB);
nothing is downloaded. ``bench/digits.py`` measured it against the small
recognisers trained by the project (``scripts/train_digits.py``) on the
corpus's handwriting: PP-OCR reads more boxes right, so it is the one the
reader uses; the project's network (``digit_cnn.py``) is its second opinion
on boxes PP-OCR does not read clearly (``box_digits.py``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from madoguchi.ocr.errors import OcrUnavailableError
from madoguchi.ocr.preprocess import dilate

# No digit is ever impossible: the decision must see every alternative.
PROBABILITY_FLOOR = 1e-4
_HEIGHT = 48
_WIDTH = 64  # a box is about as wide as tall; more width only costs time
_MODEL = "PP-OCRv6_rec_small.onnx"
_INSTALL = "pip install rapidocr onnxruntime (scripts/setup.sh does)"


def model_path() -> Path:
    """Where the recognition model is: inside the installed ``rapidocr`` package."""
    try:
        import rapidocr
    except ImportError as exc:
        raise OcrUnavailableError(f"rapidocr is not installed ({_INSTALL})") from exc
    path = Path(rapidocr.__file__).resolve().parent / "models" / _MODEL
    if not path.exists():
        raise OcrUnavailableError(f"{path} is missing: reinstall rapidocr ({_INSTALL})")
    return path


class _Recogniser:
    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise OcrUnavailableError(f"onnxruntime is not installed ({_INSTALL})") from exc
        options = ort.SessionOptions()
        # One core per reader, as Tesseract runs (OMP_THREAD_LIMIT=1).
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session: Any = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        meta = self.session.get_modelmeta().custom_metadata_map
        characters = meta["character"].splitlines()
        # CTC class 0 is the blank; the dictionary's characters follow.
        index = {ch: i + 1 for i, ch in enumerate(characters)}
        self.columns = [
            [index[ch] for ch in (str(d), chr(0xFF10 + d)) if ch in index] for d in range(10)
        ]
        self.input = self.session.get_inputs()[0].name
        # Greedy CTC decoding: class i is characters[i - 1]; past the list, a space.
        self.characters = characters

    def lines(self, batch: np.ndarray) -> list[str]:
        """Each image of the batch (n×3×48×w) read as a line of text (greedy CTC)."""
        out = self.session.run(None, {self.input: batch})[0]
        texts = []
        for best in out.argmax(axis=2):
            chars, previous = [], 0
            for k in best.tolist():
                if k != previous and k != 0:
                    chars.append(self.characters[k - 1] if k - 1 < len(self.characters) else " ")
                previous = k
            texts.append("".join(chars).strip())
        return texts

    def digit_scores(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input: batch})[0]  # (n, steps, classes)
        scores = np.stack(
            [out[:, :, cols].max(axis=(1, 2)) for cols in self.columns], axis=1
        )
        return np.asarray(scores, dtype=np.float64)


@cache
def _recogniser() -> _Recogniser:
    return _Recogniser(model_path())


# Strokes thinner than this (mean width across, in pixels at the boxes' 10 px/mm) are a pen's.
_THIN_STROKE_PX = 8.0


def _thickened(glyph: np.ndarray) -> np.ndarray:
    """A pen's ink grown by one pixel each way (at the boxes' 10 px/mm); print as it is.

    The network was trained on print, whose strokes are bolder than a pen's
    once a box is scaled to 48 px; measured on the corpus's handwriting (a
    development seed, not the bench's), one pixel read more whole numbers
    than none, two or three, or than averaging several such variants. The
    form's own bold digits (9-11 px) grown blur, and lose PP-OCR's clear
    reading that confirms Tesseract's: they are left alone.
    """
    edges = np.diff(np.pad(glyph.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    runs = int((edges == 1).sum())
    if runs == 0 or glyph.sum() / runs >= _THIN_STROKE_PX:
        return glyph
    return dilate(glyph)


def _prepared(glyph: np.ndarray) -> np.ndarray:
    """One box's ink (True = ink) as the network's input: 3×48×64, white paper."""
    h, w = glyph.shape
    side = max(h, w)
    pad = max(4, side // 4)
    canvas = np.full((side + 2 * pad, side + 2 * pad), 255, dtype=np.uint8)
    top, left = pad + (side - h) // 2, pad + (side - w) // 2
    canvas[top : top + h, left : left + w] = np.where(glyph, 0, 255)
    size = _HEIGHT
    image = Image.fromarray(canvas).resize((size, size), Image.Resampling.BOX)
    plane = np.full((_HEIGHT, _WIDTH), 255, dtype=np.float32)
    x = (_WIDTH - size) // 2
    plane[:, x : x + size] = np.asarray(image, dtype=np.float32)
    plane = (plane / 255.0 - 0.5) / 0.5
    return np.repeat(plane[None], 3, axis=0)


def _line_input(line: np.ndarray, width: int) -> np.ndarray:
    """A text line (grey, 0 = ink) at the network's height, on white, ``width`` wide."""
    canvas = line.astype(np.uint8)
    scaled_w = max(1, min(width, round(canvas.shape[1] * _HEIGHT / canvas.shape[0])))
    image = Image.fromarray(canvas).resize((scaled_w, _HEIGHT), Image.Resampling.LANCZOS)
    plane = np.full((_HEIGHT, width), 255, dtype=np.float32)
    plane[:, :scaled_w] = np.asarray(image, dtype=np.float32)
    plane = (plane / 255.0 - 0.5) / 0.5
    return np.repeat(plane[None], 3, axis=0)


def read_lines(lines: list[np.ndarray]) -> list[str]:
    """Lines of text (grey images, one line each) read by PP-OCR's recogniser, in order.

    Lines of about the same length go through the network together.
    """
    recogniser = _recogniser()
    widths = [max(_HEIGHT, round(m.shape[1] * _HEIGHT / max(1, m.shape[0])) + 16) for m in lines]
    order = sorted(range(len(lines)), key=widths.__getitem__)
    texts = [""] * len(lines)
    for start in range(0, len(order), 8):
        group = order[start : start + 8]
        width = min(2400, max(widths[i] for i in group))
        batch = np.stack([_line_input(lines[i], width) for i in group]).astype(np.float32)
        for i, text in zip(group, recogniser.lines(batch), strict=True):
            texts[i] = text
    return texts


def digit_probabilities(glyphs: list[np.ndarray]) -> np.ndarray:
    """Each box's ink → ten scores, one per digit (0 first), each in [PROBABILITY_FLOOR, 1].

    Raises OcrUnavailableError when rapidocr or onnxruntime is missing.
    """
    if not glyphs:
        return np.zeros((0, 10))
    batch = np.stack([_prepared(_thickened(g)) if g.size else _prepared(np.zeros((8, 8), bool))
                      for g in glyphs]).astype(np.float32)
    scores = _recogniser().digit_scores(batch)
    clipped: np.ndarray = np.clip(scores, PROBABILITY_FLOOR, 1.0)
    return clipped
