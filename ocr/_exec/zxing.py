"""The one place that reads barcodes: the zxing-cpp binding.

zxing-cpp is a library, not a program, but it is an outside tool all the
same: it is loaded and its version looked up once, its absence makes the
reader unusable (the desk's fault, not the document's), and its failures on
an image become the project's exceptions.

Quirks handled here: only QR codes are looked for, upright and dark on
light (the form prints them so; trying rotations and inversions costs time
and finds nothing more on a FAX).
"""

from __future__ import annotations

import importlib.metadata
from functools import cache
from types import ModuleType

from PIL import Image

from madoguchi.ocr.errors import FaxDocumentError, OcrUnavailableError


@cache
def _binding() -> ModuleType:
    """The binding, loaded and its installed version looked up once (the module has none)."""
    try:
        import zxingcpp

        importlib.metadata.version("zxing-cpp")
    except (ImportError, importlib.metadata.PackageNotFoundError) as exc:
        raise OcrUnavailableError(
            f"zxing-cpp is not installed (pip install zxing-cpp): {exc}"
        ) from exc
    return zxingcpp


def read_qr_codes(gray: Image.Image) -> list[str]:
    """The text of every QR code on a greyscale image."""
    zxingcpp = _binding()
    try:
        found = zxingcpp.read_barcodes(
            gray,
            formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode),
            try_rotate=False,
            try_invert=False,
        )
    except (ValueError, RuntimeError) as exc:
        raise FaxDocumentError("ocr_failed", f"zxing-cpp cannot read the page: {exc}") from exc
    return [barcode.text for barcode in found]
