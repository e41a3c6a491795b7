"""The QR code on a form we pre-printed: the support number and, on a follow-up, the 問合せ番号."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from madoguchi.ocr._exec import zxing
from madoguchi.ocr.form import QR_PAYLOAD_RE


@dataclass(frozen=True)
class QrRead:
    raw: str
    digits: str | None  # None: not our form's code
    ticket: str | None


def read_qr(gray: Image.Image) -> list[QrRead]:
    reads = []
    for text in zxing.read_qr_codes(gray):
        m = QR_PAYLOAD_RE.match(text)
        reads.append(
            QrRead(text, m.group("digits") if m else None, m.group("ticket") if m else None)
        )
    return reads
