"""The FAX reader's own exceptions.

Everything that goes wrong with a FAX document ends up as one of these, so
the pipeline has a single thing to catch and a stable ``reason_code`` to put
on the quarantine entry; ``reason`` is the sentence staff read.
"""

from __future__ import annotations

from typing import Literal

ReasonCode = Literal[
    "corrupt_pdf",
    "encrypted_pdf",
    "too_many_pages",
    "image_too_large",
    "not_an_image",
    "not_a_fax",
    "unsupported_format",
    "empty_document",
    "timeout",
    "ocr_failed",
]


class FaxDocumentError(Exception):
    """A FAX document that cannot be read: bad input, or a tool that failed on it."""

    def __init__(self, reason_code: ReasonCode, reason: str) -> None:
        super().__init__(f"{reason_code}: {reason}")
        self.reason_code: ReasonCode = reason_code
        self.reason = reason


class OcrUnavailableError(RuntimeError):
    """Tesseract or its language data is missing: the desk, not the document, is at fault.

    The pipeline retries such a FAX later instead of quarantining it.
    """
