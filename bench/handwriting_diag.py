"""Why handwritten box numbers fail: segmentation, the recogniser, or the decision's margin?

    OMP_THREAD_LIMIT=1 .venv/bin/python bench/handwriting_diag.py [--n 40] [--crops DIR]

Makes the corpus's handwritten form pages (bench/fax_corpus.py, the bench's
seed and plan), finds their boxes as the reader does, gives the boxes to the
reader's recogniser and plays the decision (``rules.fax_number``) against a
closed set like bench/ocr.py's (the truth and 2,000 random numbers). Per
style and resolution it counts where each page is lost:

* argmax  - every box's likeliest digit is the true one;
* best    - the likeliest valid (check digit) reading is the truth;
* chosen  - ``choose_number`` accepts it (margin and digit floor);
* wrong   - ``choose_number`` accepts another number (a false accept);
* unsafe  - the likeliest valid reading is clear on its own (``clear_reading``:
  margin and digit floor) and is not the truth: a false accept were that
  reading a registered number (the closed set here is random, so ``wrong``
  alone hardly ever sees one);
* over    - pages where a digit reaches past its box's interior (over or
  across a box line: what the segmentation must keep).

The probabilities are the reader's (``ocr/box_digits.py``: PP-OCR's, with
the network's second opinion (``ocr/digit_cnn.py``) where PP-OCR is not clear, and the 1/7
question asked of a box read again with its top line kept where the digit
meets it at the box's right part); ``--pp-only`` gives PP-OCR's alone. With ``--crops`` the
glyphs of wrongly read boxes are saved as PNGs.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image

from bench import fax_corpus
from madoguchi.ocr import ppocr
from madoguchi.ocr.box_digits import box_probabilities
from madoguchi.ocr.geometry import find_form, px_per_mm
from madoguchi.ocr.pages import load_pages
from madoguchi.ocr.preprocess import ink_mask, remove_streaks, to_gray
from madoguchi.ocr.zonal import BoxCell, box_cells
from madoguchi.ticketing.rules.fax_number import choose_number, clear_reading, valid_readings


def _cells(item: fax_corpus.CorpusItem) -> list[BoxCell] | None:
    image = load_pages(item.path.read_bytes(), item.path.name)[0]
    gray, ink = remove_streaks(to_gray(image), ink_mask(image))
    geometry = find_form(ink, px_per_mm(image))
    return None if geometry is None else box_cells(gray, geometry)


def _overruns(cell: BoxCell) -> bool:
    """The digit reaches past the box's interior (over or across a box line)."""
    return cell.glyph.shape[0] > cell.interior.shape[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40, help="items per resolution")
    parser.add_argument("--seed", type=int, default=20260115)
    parser.add_argument("--crops", type=Path, default=None)
    parser.add_argument("--verbose", action="store_true", help="why each page was not chosen")
    parser.add_argument("--pp-only", action="store_true", help="PP-OCR's probabilities alone")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    decoys = {fax_corpus.random_number(rng) for _ in range(2000)}
    rows: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    confusions: dict[str, Counter[str]] = defaultdict(Counter)
    jobs = fax_corpus.plan({"form_handwritten": args.n}, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        for kind, resolution, container, seed in jobs:
            item = fax_corpus.make_item(kind, resolution, container, seed, Path(tmp))
            truth = item.expected_number or ""
            row = rows[(item.style, resolution)]
            row["pages"] += 1
            cells = _cells(item)
            if cells is None:
                row["no_form"] += 1
                continue
            glyphs = [cell.glyph for cell in cells]
            row["over"] += any(_overruns(cell) for cell in cells)
            bars = [cell.bar for cell in cells]
            p = (ppocr.digit_probabilities(glyphs) if args.pp_only
                 else box_probabilities(glyphs, bars=bars))
            top = "".join(str(int(d)) for d in p.argmax(axis=1))
            row["argmax"] += top == truth
            row["digits_ok"] += sum(a == b for a, b in zip(top, truth, strict=True))
            readings = valid_readings(p.tolist())
            row["best"] += bool(readings) and readings[0].digits == truth
            row["in_top"] += any(r.digits == truth for r in readings)
            choice = choose_number(readings, p.tolist(), decoys | {truth})
            row["chosen"] += choice.digits == truth
            row["wrong"] += choice.digits is not None and choice.digits != truth
            clear = clear_reading(readings, p.tolist())
            row["unsafe"] += clear is not None and clear != truth
            if args.verbose and choice.digits != truth:
                weak = sorted((float(p[k, int(d)]), k, d) for k, d in enumerate(truth))[:2]
                print(f"{item.style}/{resolution}/{seed}: {choice.reason}; weakest true "
                      + ", ".join(f"box {k} {d} p={q:.3f}" for q, k, d in weak), file=sys.stderr)
            for k, (a, b) in enumerate(zip(top, truth, strict=True)):
                if a != b:
                    confusions[item.style][f"{b}->{a}"] += 1
                    if args.crops:
                        args.crops.mkdir(parents=True, exist_ok=True)
                        name = f"{item.style}-{resolution[:4]}-{seed}-{k}-{b}as{a}.png"
                        Image.fromarray(np.where(glyphs[k], 0, 255).astype(np.uint8)).save(
                            args.crops / name
                        )
    print(f"{'style':<15}{'res':<10}{'pages':>6}{'digit%':>8}{'argmax':>8}{'best':>6}"
          f"{'in_top':>7}{'chosen':>7}{'wrong':>6}{'unsafe':>7}{'over':>5}")
    for (style, res), row in sorted(rows.items()):
        n = row["pages"]
        print(f"{style:<15}{res:<10}{n:>6}{100 * row['digits_ok'] / (12 * n):>7.1f}%"
              f"{row['argmax']:>8}{row['best']:>6}{row['in_top']:>7}{row['chosen']:>7}"
              f"{row['wrong']:>6}{row['unsafe']:>7}{row['over']:>5}")
    for style, counter in sorted(confusions.items()):
        print(f"{style}: " + ", ".join(f"{k} {v}" for k, v in counter.most_common(10)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
