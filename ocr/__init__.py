"""FAX reading: page images, the request form, and the support number on them.

The heavy modules (the reader pulls in numpy, zxing-cpp and Tesseract) load
on first use, so importing ``madoguchi.ocr.pages`` or the errors stays cheap
for processes that only pass FAX limits around.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from madoguchi.ocr.errors import FaxDocumentError, OcrUnavailableError

_LAZY = {
    "FaxLimits": "madoguchi.config.settings",
    "load_pages": "madoguchi.ocr.pages",
    "FaxReading": "madoguchi.ocr.reader",
    "MethodRead": "madoguchi.ocr.verdict",
    "Verdict": "madoguchi.ocr.verdict",
    "read_fax": "madoguchi.ocr.reader",
    "read_fax_document": "madoguchi.ocr.reader",
    "write_form": "madoguchi.ocr.form",
}

__all__ = ["FaxDocumentError", "OcrUnavailableError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
