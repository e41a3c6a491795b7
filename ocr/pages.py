"""Turn a FAX document (TIFF or PDF bytes) into page images, within limits.

FAX gateways deliver TIFF Class F (1-bit, G3 1-D/2-D or G4, 204×98 or
204×196 dpi, one page per IFD) or PDF. Every page comes out with square
pixels: standard-resolution lines are stretched to their true height before
anything tries to read them.

Bad input is refused early and cheaply with a FaxDocumentError: the page
count is checked before a single page is decoded (``pdfinfo`` for PDF, the
IFD chain for TIFF), the pixel count from the header before the pixels are
allocated, and poppler runs under a deadline. The bounds are the settings'
``[fax]`` section (``config.settings.FaxLimits``).
"""

from __future__ import annotations

import io
import math
import tempfile
import time
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from madoguchi.config.settings import MIN_PDF_DPI, FaxLimits
from madoguchi.ocr._exec import poppler
from madoguchi.ocr.errors import FaxDocumentError
from madoguchi.ocr.preprocess import fix_aspect

# Modes a FAX page can have: bilevel, or greyscale from a gateway that
# smooths. Colour, 16-bit and float TIFFs are scans or photos, not FAXes.
_FAX_MODES = frozenset({"1", "L", "LA", "P"})
# From 1 inch wide at 200 dpi to A3 at 600 dpi.
_MIN_WIDTH, _MAX_WIDTH = 200, 7200
_RASTER_FORMATS = frozenset({"TIFF", "PNG", "JPEG", "GIF", "BMP"})


class Deadline:
    """The time a document has left; every step asks before it starts."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def check(self, what: str) -> float:
        left = self.remaining()
        if left <= 0:
            raise FaxDocumentError(
                "timeout", f"gave up {what}: over the {self.seconds:.0f} s budget for one document"
            )
        return left


def sniff(data: bytes) -> str:
    """'pdf', 'raster' or 'unknown' from the first bytes (names and types lie)."""
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf"
    if head.startswith((b"II*\x00", b"MM\x00*", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF8")):
        return "raster"
    if head.startswith(b"BM"):
        return "raster"
    return "unknown"


def load_pages(
    data: bytes,
    filename: str = "",
    limits: FaxLimits | None = None,
    deadline: Deadline | None = None,
) -> list[Image.Image]:
    """Every page of the document as a square-pixel image (mode '1' or 'L').

    Each image's ``info`` carries ``dpi`` (after the aspect fix) and
    ``fax_resolution`` ("standard", "fine" or "" when not a FAX resolution).
    Raises FaxDocumentError for anything that is not a readable FAX.
    """
    limits = limits or FaxLimits()
    deadline = deadline or Deadline(limits.timeout_seconds)
    kind = sniff(data)
    name = filename or "the document"
    if not data:
        raise FaxDocumentError("empty_document", f"{name} is empty")
    if kind == "pdf":
        pages = _load_pdf(data, name, limits, deadline)
    elif kind == "raster":
        pages = _load_raster(data, name, limits, deadline)
    else:
        raise FaxDocumentError("not_an_image", f"{name} is neither a PDF nor a TIFF/PNG image")
    if not pages:
        raise FaxDocumentError("empty_document", f"{name} has no pages")
    return pages


def _fax_resolution(x_dpi: float, y_dpi: float) -> str:
    if 190 <= x_dpi <= 210:
        if 90 <= y_dpi <= 105:
            return "standard"
        if 185 <= y_dpi <= 210:
            return "fine"
    return ""


def _image_dpi(im: Image.Image) -> tuple[float, float]:
    dpi = im.info.get("dpi")
    if isinstance(dpi, tuple) and len(dpi) == 2:
        try:
            x, y = float(dpi[0]), float(dpi[1])
        except (TypeError, ValueError):
            return 0.0, 0.0
        if math.isfinite(x) and math.isfinite(y) and x > 0 and y > 0:
            return x, y
    return 0.0, 0.0


def _guess_dpi(im: Image.Image) -> tuple[float, float]:
    """Resolution for a page whose header gives none.

    A standard-resolution A4 FAX is 1728 dots across and about 1145 lines
    down: much wider than a portrait page may be. Anything else is taken as
    square pixels across a FAX's 8.5-inch scan width.
    """
    x_dpi = im.width / 8.5
    if im.width in (1728, 2048, 2432) and im.height / im.width < 0.8:
        return 204.0, 98.0
    return x_dpi, x_dpi


def _load_raster(
    data: bytes, name: str, limits: FaxLimits, deadline: Deadline
) -> list[Image.Image]:
    with warnings.catch_warnings():
        # Damaged tags are refused below when they matter; Pillow's chatter is noise.
        warnings.simplefilter("ignore", UserWarning)
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; refuse both.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise FaxDocumentError("image_too_large", f"{name}: {exc}") from exc
        except Image.DecompressionBombWarning as exc:
            raise FaxDocumentError("image_too_large", f"{name}: {exc}") from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise FaxDocumentError(
                "not_an_image", f"{name} is not a readable image: {exc}"
            ) from exc
        with im:
            if im.format not in _RASTER_FORMATS:
                raise FaxDocumentError(
                    "unsupported_format", f"{name} is a {im.format} image, not a FAX format"
                )
            return _raster_frames(im, name, limits, deadline)


def _raster_frames(
    im: Image.Image, name: str, limits: FaxLimits, deadline: Deadline
) -> list[Image.Image]:
    pages: list[Image.Image] = []
    count = _count_frames(im, limits, name, deadline)
    for index in range(count):
        deadline.check(f"decoding page {index + 1} of {name}")
        try:
            im.seek(index)
        except (EOFError, OSError, ValueError) as exc:
            raise FaxDocumentError(
                "not_an_image", f"{name}: page {index + 1} cannot be read: {exc}"
            ) from exc
        page = index + 1
        width, height = im.size
        if width * height > limits.max_pixels:
            raise FaxDocumentError(
                "image_too_large",
                f"{name}: page {page} is {width}×{height} pixels, over the limit of "
                f"{limits.max_pixels:,}",
            )
        if im.mode not in _FAX_MODES:
            raise FaxDocumentError(
                "not_a_fax",
                f"{name}: page {page} is a {im.mode} image; a FAX page is black and white "
                "or greyscale",
            )
        if not (_MIN_WIDTH <= width <= _MAX_WIDTH) or height < 100:
            raise FaxDocumentError(
                "not_a_fax", f"{name}: page {page} is {width}×{height} pixels, not a page size"
            )
        x_dpi, y_dpi = _image_dpi(im)
        if not x_dpi:
            x_dpi, y_dpi = _guess_dpi(im)
        try:
            im.load()
            frame = im.copy()
        except (OSError, ValueError, SyntaxError) as exc:
            raise FaxDocumentError(
                "not_an_image", f"{name}: page {page} is damaged: {exc}"
            ) from exc
        if frame.mode not in ("1", "L"):
            frame = frame.convert("L")
        stretched = height * x_dpi / y_dpi * width
        if stretched > limits.max_pixels:
            raise FaxDocumentError(
                "image_too_large",
                f"{name}: page {page} would exceed the pixel limit once stretched",
            )
        fixed = fix_aspect(frame, x_dpi, y_dpi)
        fixed.info["dpi"] = (x_dpi, x_dpi)
        fixed.info["fax_resolution"] = _fax_resolution(x_dpi, y_dpi)
        # HylaFAX writes the sender's TSI (its announced number) into ImageDescription.
        tags = getattr(im, "tag_v2", None)
        described = tags.get(270) if tags is not None else None
        if isinstance(described, str) and described.strip():
            fixed.info["fax_tsi"] = described.strip()[:100]
        pages.append(fixed)
    return pages


def _count_frames(im: Image.Image, limits: FaxLimits, name: str, deadline: Deadline) -> int:
    """Walk the page chain, never further than one past the limit."""
    count = 1
    while True:
        try:
            im.seek(count)
        except EOFError:
            break
        except (OSError, ValueError, SyntaxError) as exc:
            raise FaxDocumentError(
                "not_an_image", f"{name}: page {count + 1} cannot be read: {exc}"
            ) from exc
        count += 1
        if count > limits.max_pages:
            raise FaxDocumentError(
                "too_many_pages", f"{name} has more than {limits.max_pages} pages"
            )
        deadline.check(f"counting the pages of {name}")
    im.seek(0)
    return count


def _load_pdf(data: bytes, name: str, limits: FaxLimits, deadline: Deadline) -> list[Image.Image]:
    with tempfile.TemporaryDirectory(prefix="madoguchi-fax-") as tmp:
        path = Path(tmp) / "fax.pdf"
        path.write_bytes(data)
        count = poppler.page_count(path, name, deadline.check(f"reading {name}"))
        if count == 0:
            raise FaxDocumentError("empty_document", f"{name} has no pages")
        if count > limits.max_pages:
            raise FaxDocumentError(
                "too_many_pages", f"{name} has {count} pages; the limit is {limits.max_pages}"
            )
        sizes = poppler.page_sizes(path, name, count, deadline.check(f"reading {name}"))
        pages: list[Image.Image] = []
        for index, (w_pt, h_pt) in enumerate(sizes, start=1):
            dpi = _pdf_page_dpi(w_pt, h_pt, limits, name, index)
            pages.append(_render_pdf_page(path, index, dpi, name, deadline))
        return pages


def _pdf_page_dpi(w_pt: float, h_pt: float, limits: FaxLimits, name: str, page: int) -> int:
    """The configured resolution, lowered for oversized pages so the pixel limit holds."""
    area_in2 = max(w_pt, 1.0) * max(h_pt, 1.0) / (72.0 * 72.0)
    fits = math.floor(math.sqrt(limits.max_pixels / area_in2))
    dpi = min(limits.pdf_dpi, fits)
    if dpi < MIN_PDF_DPI:
        raise FaxDocumentError(
            "image_too_large",
            f"{name}: page {page} is {w_pt / 72:.0f}×{h_pt / 72:.0f} inches; "
            f"it cannot be rendered legibly within {limits.max_pixels:,} pixels",
        )
    return dpi


def _render_pdf_page(path: Path, page: int, dpi: int, name: str, deadline: Deadline) -> Image.Image:
    timeout = deadline.check(f"rendering page {page} of {name}")
    image = poppler.render(path, dpi, first=page, last=page, name=name, timeout=timeout)[0]
    if image.mode != "L":
        image = image.convert("L")
    image.info["dpi"] = (float(dpi), float(dpi))
    image.info["fax_resolution"] = ""
    return image
