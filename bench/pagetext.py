"""How much of a FAX's inquiry its page text keeps: Tesseract jpn against PP-OCR (RapidOCR).

    OMP_THREAD_LIMIT=1 .venv/bin/python bench/pagetext.py [--per-kind 4]

Makes typed pages of the corpus (our form filled in, letters) at both
resolutions and reads each whole page with each engine. Prints per kind and
resolution: the share of the inquiry's characters recovered in order
(difflib's matching blocks over the text without spaces, NFKC; median and
mean), and CPU seconds per page on one core.

* ``reader``: what the reader makes (our form: each field read by PP-OCR line by line,
  ocr/form_text.py; any other page: Tesseract jpn+eng, ocr/fulltext.py,
  automatic page layout), number and text together;
* ``rapidocr``: PP-OCR detection + recognition (PyPI rapidocr's default
  models, inside its wheel, on onnxruntime), one thread.
"""

from __future__ import annotations

import argparse
import difflib
import os
import statistics
import sys
import tempfile
import unicodedata
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench import fax_corpus
from madoguchi.ocr.pages import Deadline, load_pages
from madoguchi.ocr.reader import read_fax


def recall(truth: str, text: str) -> float:
    """Share of ``truth``'s characters found in ``text`` in order (spaces ignored, NFKC)."""

    def norm(s: str) -> str:
        return "".join(unicodedata.normalize("NFKC", s).split())

    a, b = norm(truth), norm(text)
    if not a:
        return 1.0
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / len(a)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class _Rapid:
    def __init__(self) -> None:
        from rapidocr import RapidOCR

        self.engine = RapidOCR(
            params={
                "Global.log_level": "critical",
                "EngineConfig.onnxruntime.intra_op_num_threads": 1,
            }
        )

    def text(self, image: object) -> str:
        rgb = np.asarray(image.convert("RGB"))  # type: ignore[attr-defined]
        out = self.engine(rgb)
        return "\n".join(getattr(out, "txts", None) or ())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-kind", type=int, default=4)
    parser.add_argument("--seed", type=int, default=777)
    args = parser.parse_args(argv)
    rapid = _Rapid()
    rows: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        for r_index, resolution in enumerate(fax_corpus.RESOLUTIONS):
            for k_index, kind in enumerate(("form_printed", "form_typed", "freeform")):
                for i in range(args.per_kind):
                    seed = args.seed * 100_000 + r_index * 10_000 + k_index * 1000 + i
                    item = fax_corpus.make_item(kind, resolution, "g4", seed, Path(tmp))
                    pages = load_pages(item.path.read_bytes(), item.path.name)
                    t = _cpu()
                    reading = read_fax(pages, deadline=Deadline(300))
                    rows[(kind, resolution, "reader")].append(
                        (recall(item.inquiry, reading.text), (_cpu() - t) / len(pages))
                    )
                    t = _cpu()
                    text = "\n".join(rapid.text(p) for p in pages)
                    rows[(kind, resolution, "rapidocr")].append(
                        (recall(item.inquiry, text), (_cpu() - t) / len(pages))
                    )
    print("page text engines (bench/pagetext.py): inquiry characters recovered in order")
    print(f"{'kind':<14}{'resolution':<11}{'engine':<10}{'pages':>6}{'median':>8}{'mean':>8}"
          f"{'s/page':>8}")
    for (kind, resolution, engine), got in sorted(rows.items()):
        rec = [r for r, _ in got]
        print(
            f"{kind:<14}{resolution:<11}{engine:<10}{len(got):>6}"
            f"{100 * statistics.median(rec):>7.1f}%{100 * statistics.fmean(rec):>7.1f}%"
            f"{statistics.fmean(s for _, s in got):>8.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
