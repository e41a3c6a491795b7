"""FAX documents for the pipeline's tests: our form or a letter, sent through a simulated FAX.

The page is drawn as PDF (reportlab), then degraded as a FAX machine does
(bench/fax_corpus.py: header line, skew, 1-bit at FAX resolution, specks)
and saved as TIFF Class F or PDF. Real Tesseract reads the result.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from bench.fax_corpus import fax_customer, fax_from_pdf
from madoguchi.ocr import form


def form_pdf(support_number: str | None, lines: Sequence[str] = (),
             ticket: str | None = None) -> bytes:
    """Our request form, the number pre-printed (or blank), with ``lines`` written on it."""
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(form.PAGE_W_MM * mm, form.PAGE_H_MM * mm))
    form.register_fonts()
    digits = support_number.replace("-", "") if support_number else None
    form.draw_form(c, printed_digits=digits, qr_digits=digits, ticket_number=ticket,
                   vendor_name="サポートセンター", vendor_fax="03-5555-0199")
    c.setFont(form.JAPANESE_FONT, 11)
    for i, line in enumerate(lines):
        c.drawString(30 * mm, (95 - 7 * i) * mm, line)
    c.showPage()
    c.save()
    return buf.getvalue()


def letter_pdf(lines: Sequence[str]) -> bytes:
    """A free-form page: what a customer FAXes without the form."""
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(210 * mm, 297 * mm))
    form.register_fonts()
    c.setFont(form.JAPANESE_FONT, 14)
    for i, line in enumerate(lines):
        c.drawString(25 * mm, (265 - 10 * i) * mm, line)
    c.showPage()
    c.save()
    return buf.getvalue()


def send_fax(pdf: bytes, path: Path, *, resolution: str = "fine", container: str = "g4",
             seed: int = 1, sender_fax: str | None = None) -> Path:
    """``pdf`` as it arrives from a FAX machine (whose number is ``sender_fax``), at ``path``."""
    rng = random.Random(seed)
    customer = None
    if sender_fax is not None:
        customer = fax_customer(rng, sender_fax)
    fax_from_pdf(pdf, path, resolution=resolution, container=container,
                 rng=rng, nprng=np.random.default_rng(seed), customer=customer)
    return path
