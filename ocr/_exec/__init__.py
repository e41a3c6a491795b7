"""The external programs the FAX reader runs, one thin wrapper each.

As OCRmyPDF's ``_exec`` does: each module knows its tool's command line and
quirks, probes the tool's version once (cached), and turns every failure
into the project's own exceptions (``ocr/errors.py``):
``OcrUnavailableError`` when the tool is missing or unusable (the desk's
fault: retried later, never quarantined) and ``FaxDocumentError`` with a
reason code when the tool fails on this document (quarantined). Nothing
else in the project runs tesseract, poppler or zxing-cpp.
"""
