"""Write the demo's handwritten and sender-identified FAXes (demo/fax/fax0005.tif, fax0006.tif).

    .venv/bin/python scripts/make_demo_faxes.py

Seeded, so the same files come out every time (bench/fax_corpus.py draws and
degrades them):

* fax0005.tif: the blank form, 2031-0001-0008 written into the boxes by
  hand (a quick hand, seed 26), sent from さくら商事's FAX machine
  (03-1234-5679); the boxes cannot be read alone, PP-OCR box by box and the
  registered numbers can (tests/test_fax_sender.py reads the same page).
* fax0006.tif: a letter with no support number, sent from みなと製作所's
  machine (045-640-1112): the desk gives it that customer, flagged for staff.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fax_corpus import fax_customer, fax_from_pdf, handwritten_form
from tests.faxfactory import letter_pdf

DEMO_FAX = Path(__file__).resolve().parents[1] / "demo" / "fax"


def main() -> int:
    handwritten_form("203100010008", DEMO_FAX / "fax0005.tif", seed=26, sender_fax="03-1234-5679")
    rng = random.Random(4)
    fax_from_pdf(
        letter_pdf(["お世話になっております。", "番号が分からないのですが、",
                    "見積書の再発行をお願いできますでしょうか。"]),
        DEMO_FAX / "fax0006.tif", resolution="fine", container="g4", rng=rng,
        nprng=np.random.default_rng(4), customer=fax_customer(rng, "045-640-1112"),
    )
    print(f"wrote {DEMO_FAX / 'fax0005.tif'} and {DEMO_FAX / 'fax0006.tif'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
