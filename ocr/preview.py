"""A customer's image or PDF attachment as a small PNG for the ticket page.

Staff see what was sent without downloading it. Whatever arrived is drawn
again by the desk: the browser only ever gets a PNG this module wrote, never
the customer's bytes, so nothing in them runs or is fetched. The limits are
the FAX reader's (``[fax]``: pages, pixels, seconds): a PDF's page count and
page size are asked of ``pdfinfo`` before anything is drawn, poppler runs in
its own process under the deadline and is killed when it passes, and an
image's pixel count is read from its header before its pixels are decoded.
Only the first page is drawn.
"""

from __future__ import annotations

import io
import math
import tempfile
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from madoguchi.config.settings import FaxLimits
from madoguchi.ocr._exec import poppler
from madoguchi.ocr.errors import FaxDocumentError, OcrUnavailableError
from madoguchi.ocr.pages import Deadline, sniff

# Wide enough to read a screenshot's error message, small enough for a phone.
WIDTH = 960
_RASTER = frozenset({"PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"})
# Declared types the ticket page offers a preview for (the bytes decide what is drawn).
PREVIEW_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/bmp", "image/tiff",
                           "image/webp", "application/pdf"})


class PreviewError(Exception):
    """No preview: not an image or PDF, damaged, too large, or too slow to draw."""


def preview_png(data: bytes, limits: FaxLimits, width: int = WIDTH) -> bytes:
    """The first page of ``data`` (an image or a PDF) as a PNG at most ``width`` wide."""
    kind = sniff(data)
    deadline = Deadline(min(limits.timeout_seconds, 20.0))
    try:
        if kind == "pdf":
            image = _pdf_first_page(data, limits, width, deadline)
        else:
            image = _raster(data, limits)
    except (FaxDocumentError, OcrUnavailableError) as exc:
        raise PreviewError(str(exc)) from exc
    with image:
        image.thumbnail((width, width * 4))
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _raster(data: bytes, limits: FaxLimits) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
            if im.format not in _RASTER:
                raise PreviewError(f"not an image the desk draws ({im.format})")
            w, h = im.size
            if w * h > limits.max_pixels or w <= 0 or h <= 0:
                raise PreviewError(f"the image is {w}×{h} pixels, over the limit")
            im.seek(0)
            im.load()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
                Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise PreviewError(f"not a readable image: {exc}") from exc
    if im.mode in ("L", "RGB"):
        return im
    with im:
        return im.convert("RGBA").convert("RGB") if "A" in im.mode or im.mode == "P" \
            else im.convert("RGB")


def _pdf_first_page(data: bytes, limits: FaxLimits, width: int,
                    deadline: Deadline) -> Image.Image:
    with tempfile.TemporaryDirectory(prefix="madoguchi-preview-") as tmp:
        path = Path(tmp) / "attachment.pdf"
        path.write_bytes(data)
        count = poppler.page_count(path, "the PDF", deadline.check("reading the PDF"))
        if count == 0:
            raise PreviewError("the PDF has no pages")
        (w_pt, h_pt), = poppler.page_sizes(path, "the PDF", 1, deadline.check("reading the PDF"))
        # The resolution that draws the page ``width`` wide, within the pixel limit.
        dpi = max(1, math.floor(width / max(w_pt / 72.0, 0.1)))
        area = max(w_pt, 1.0) * max(h_pt, 1.0) / (72.0 * 72.0)
        dpi = min(dpi, math.floor(math.sqrt(limits.max_pixels / area)), 300)
        if dpi < 10:
            raise PreviewError("the PDF's first page is too large to draw")
        return poppler.render(path, dpi, first=1, last=1, name="the PDF",
                              timeout=deadline.check("drawing the PDF"))[0]
