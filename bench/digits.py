"""Which recogniser reads the digit boxes best: the project's network or PP-OCR (RapidOCR)?

    OMP_THREAD_LIMIT=1 .venv/bin/python bench/digits.py [--per-style 6] [--rapidocr]

Makes FAX pages of the corpus (bench/fax_corpus.py) with handwritten and
typed numbers in the boxes, at both resolutions, finds each page's boxes as
the reader does (registration marks, box lines cut away) and gives every
box's ink to each recogniser. Prints per writer's style / font kind and
resolution: the share of digits read right (top choice), of whole numbers
read right (all twelve), the mean probability given to the true digit, and
milliseconds per box on one core.

RapidOCR (PyPI ``rapidocr`` + ``onnxruntime``; PP-OCR's recognition model
ships in its wheel) reads each box as a one-character text line; its
answer counts as right when it is exactly the digit.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image

from bench import fax_corpus
from madoguchi.ocr import digit_cnn, ppocr
from madoguchi.ocr.geometry import find_form, px_per_mm
from madoguchi.ocr.pages import load_pages
from madoguchi.ocr.preprocess import ink_mask, remove_streaks, to_gray
from madoguchi.ocr.zonal import box_cells


def boxes(item: fax_corpus.CorpusItem) -> list[np.ndarray] | None:
    image = load_pages(item.path.read_bytes(), item.path.name)[0]
    gray, ink = remove_streaks(to_gray(image), ink_mask(image))
    geometry = find_form(ink, px_per_mm(image))
    if geometry is None:
        return None
    # The reader's cut of each box (ocr/zonal.py box_cells), the box lines taken away.
    return [cell.glyph for cell in box_cells(gray, geometry)]


class _Rapid:
    def __init__(self) -> None:
        from rapidocr import RapidOCR

        self.engine = RapidOCR(params={"Global.log_level": "critical"})

    def read(self, glyph: np.ndarray) -> str:
        h, w = glyph.shape
        pad = max(8, h // 3)
        canvas = np.full((h + 2 * pad, w + 2 * pad), 255, dtype=np.uint8)
        canvas[pad : pad + h, pad : pad + w] = np.where(glyph, 0, 255)
        rgb = np.asarray(Image.fromarray(canvas).convert("RGB"))
        out = self.engine(rgb, use_det=False, use_cls=False, use_rec=True)
        texts = getattr(out, "txts", None) or ()
        return "".join(texts).strip()


def _score(
    row: dict[str, list[float]],
    name: str,
    recognise: Callable[[list[np.ndarray]], np.ndarray],
    glyphs: list[np.ndarray],
    truth: str,
) -> None:
    """One recogniser on one page's boxes: digits and number right, p(true), ms per box."""
    t = time.process_time()
    p = recognise(glyphs)
    row[f"{name}_ms"].append((time.process_time() - t) * 1000 / len(glyphs))
    top = "".join(str(int(d)) for d in p.argmax(axis=1))
    row[f"{name}_digit"] += [float(a == b) for a, b in zip(top, truth, strict=True)]
    row[f"{name}_number"].append(float(top == truth))
    row[f"{name}_ptrue"] += [float(p[k, int(d)]) for k, d in enumerate(truth)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-style", type=int, default=6, help="pages per kind and resolution")
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--rapidocr", action="store_true", help="also measure RapidOCR")
    args = parser.parse_args(argv)
    rapid = _Rapid() if args.rapidocr else None
    rows: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with tempfile.TemporaryDirectory() as tmp:
        for r_index, resolution in enumerate(fax_corpus.RESOLUTIONS):
            for kind in ("form_handwritten", "form_typed"):
                for i in range(args.per_style * (5 if kind == "form_handwritten" else 2)):
                    offset = 5000 if kind == "form_typed" else 0
                    seed = args.seed * 100_000 + r_index * 10_000 + i + offset
                    item = fax_corpus.make_item(kind, resolution, "g4", seed, Path(tmp))
                    glyphs = boxes(item)
                    truth = item.expected_number or ""
                    style = item.style if kind == "form_handwritten" else "typed"
                    row = rows[(style, resolution)]
                    if glyphs is None:
                        row["no_form"].append(1.0)
                        continue
                    for name, recognise in (
                        ("cnn", digit_cnn.recognise),
                        ("pp", ppocr.digit_probabilities),
                    ):
                        _score(row, name, recognise, glyphs, truth)
                    if rapid is not None:
                        t = time.perf_counter()
                        read = [rapid.read(g) for g in glyphs]
                        row["rapid_ms"].append((time.perf_counter() - t) * 1000 / len(glyphs))
                        row["rapid_digit"] += [
                            float(a == b) for a, b in zip(read, truth, strict=True)
                        ]
                        row["rapid_number"].append(float("".join(read) == truth))
    mean = lambda v: 100 * float(np.mean(v)) if v else float("nan")  # noqa: E731
    print("digit box recognisers (bench/digits.py): % of digits / whole numbers right")
    print("CNN = ocr/digit_cnn.py (the second opinion, numpy); PP-OCR = ocr/ppocr.py (the")
    print("  reader's: PP-OCRv6 rec, batched, probabilities per digit); RapidOCR = the rapidocr")
    print("  package's own rec call per box (--rapidocr). Boxes cut as the reader cuts them.")
    print(f"{'style':<16}{'res':<10}{'pages':>6}  {'CNN digit':>9}{'number':>8}{'p(true)':>8}"
          f"{'ms/box':>7}  {'PP-OCR digit':>12}{'number':>8}{'p(true)':>8}{'ms/box':>7}"
          f"  {'RapidOCR':>9}{'number':>8}{'ms/box':>7}")
    for (style, res), row in sorted(rows.items()):
        n = len(row["cnn_number"])
        print(
            f"{style:<16}{res:<10}{n:>6}  {mean(row['cnn_digit']):>8.1f}%"
            f"{mean(row['cnn_number']):>7.1f}%{mean(row['cnn_ptrue']) / 100:>8.3f}"
            f"{np.mean(row['cnn_ms']):>7.2f}  {mean(row['pp_digit']):>11.1f}%"
            f"{mean(row['pp_number']):>7.1f}%{mean(row['pp_ptrue']) / 100:>8.3f}"
            f"{np.mean(row['pp_ms']):>7.2f}  {mean(row['rapid_digit']):>8.1f}%"
            f"{mean(row['rapid_number']):>7.1f}%"
            f"{np.mean(row['rapid_ms']) if row['rapid_ms'] else float('nan'):>7.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
