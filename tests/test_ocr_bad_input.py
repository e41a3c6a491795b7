"""Bad FAX input is refused with a reason, quickly, without allocating the pixels it claims."""

from __future__ import annotations

import io
import resource
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image
from reportlab.lib.pdfencrypt import StandardEncryption
from reportlab.pdfgen.canvas import Canvas

from madoguchi.config.settings import FaxLimits
from madoguchi.ocr._exec import poppler
from madoguchi.ocr.errors import FaxDocumentError
from madoguchi.ocr.pages import load_pages
from madoguchi.ocr.reader import read_fax_document

# Real Tesseract, poppler and zxing, started without a server fixture (tests/conftest.py).
pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def _refused(data: bytes, name: str, limits: FaxLimits | None = None) -> FaxDocumentError:
    with pytest.raises(FaxDocumentError) as caught:
        read_fax_document(data, name, limits or FaxLimits())
    return caught.value


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _pdf(pages_: int = 1, size: tuple[float, float] = (595.0, 842.0), **kw) -> bytes:
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=size, **kw)
    for i in range(pages_):
        c.drawString(72, 72, f"page {i + 1}")
        c.showPage()
    c.save()
    return buf.getvalue()


def _tiff_header_only(width: int, height: int) -> bytes:
    """A G4 TIFF whose header claims ``width``×``height`` over a few bytes of data."""
    entries = [
        (256, 4, 1, width),  # ImageWidth, LONG
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 1),  # BitsPerSample
        (259, 3, 1, 4),  # Compression: CCITT G4
        (262, 3, 1, 0),  # Photometric: white is zero
        (273, 4, 1, 0),  # StripOffsets, patched below
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, 16),  # StripByteCounts
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, typ, count, value in entries:
        if tag == 273:
            value = data_offset
        if typ == 3:
            out += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, typ, count, value)
    out += struct.pack("<I", 0)
    out += b"\x00" * 16
    return bytes(out)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_corrupt_pdf_is_refused():
    err = _refused(b"%PDF-1.4\n" + bytes(range(256)) * 40, "fax.pdf")
    assert err.reason_code == "corrupt_pdf"
    assert "fax.pdf" in err.reason


def test_truncated_pdf_is_refused_or_read_never_crashes():
    data = _pdf(1)[:60]
    err = _refused(data, "cut.pdf")
    assert err.reason_code == "corrupt_pdf"


def test_password_protected_pdf_is_refused_as_encrypted():
    data = _pdf(1, encrypt=StandardEncryption("user-secret", ownerPassword="owner-secret"))
    err = _refused(data, "locked.pdf")
    assert err.reason_code == "encrypted_pdf"
    assert "password" in err.reason


def test_five_hundred_page_pdf_is_refused_by_page_count_before_rasterising(monkeypatch):
    def never(*_a, **_k):
        raise AssertionError("rasterised a PDF that has too many pages")

    monkeypatch.setattr(poppler, "render", never)
    data = _pdf(500)
    start = time.monotonic()
    err = _refused(data, "huge.pdf")
    assert err.reason_code == "too_many_pages"
    assert "500 pages" in err.reason
    assert time.monotonic() - start < 5


def test_five_hundred_page_tiff_is_refused_by_page_count_before_decoding():
    frame = Image.new("1", (1728, 40), 1)
    buf = io.BytesIO()
    frame.save(buf, format="TIFF", compression="group4", save_all=True, append_images=[frame] * 499)
    start = time.monotonic()
    err = _refused(buf.getvalue(), "huge.tif")
    assert err.reason_code == "too_many_pages"
    assert time.monotonic() - start < 5


def test_giant_pdf_page_is_refused_instead_of_rendered(monkeypatch):
    monkeypatch.setattr(poppler, "render", lambda *a, **k: pytest.fail("rendered"))
    err = _refused(_pdf(1, size=(200 * 72.0, 200 * 72.0)), "poster.pdf")
    assert err.reason_code == "image_too_large"


def test_thirty_thousand_square_tiff_is_refused_without_allocating_it():
    data = _tiff_header_only(30_000, 30_000)
    before = _peak_rss_bytes()
    start = time.monotonic()
    err = _refused(data, "big.tif")
    assert err.reason_code == "image_too_large"
    assert time.monotonic() - start < 2
    assert _peak_rss_bytes() - before < 200 * MIB


@pytest.mark.parametrize("side", [100_000, 10_000, 7_000])
def test_decompression_bomb_png_is_refused_without_allocating_it(side):
    # 100k² trips Pillow's own guard, 10k² its warning, 7k² only our limit.
    data = _png_header_only(side, side)
    before = _peak_rss_bytes()
    start = time.monotonic()
    err = _refused(data, "bomb.png")
    assert err.reason_code == "image_too_large"
    assert time.monotonic() - start < 2
    assert _peak_rss_bytes() - before < 200 * MIB


def test_colour_photo_tiff_is_not_a_fax():
    photo = Image.fromarray(
        np.random.default_rng(0).integers(0, 255, (600, 800, 3), dtype=np.uint8)
    )
    buf = io.BytesIO()
    photo.save(buf, format="TIFF")
    err = _refused(buf.getvalue(), "holiday.tif")
    assert err.reason_code == "not_a_fax"
    assert "RGB" in err.reason


def test_icon_sized_tiff_is_not_a_fax():
    buf = io.BytesIO()
    Image.new("1", (64, 64), 1).save(buf, format="TIFF", compression="group4")
    assert _refused(buf.getvalue(), "icon.tif").reason_code == "not_a_fax"


def test_bytes_that_are_no_image_are_refused():
    assert _refused(b"PK\x03\x04 a zip file, not a fax", "fax.tif").reason_code == "not_an_image"
    assert _refused(b"II*\x00" + b"\xff" * 64, "broken.tif").reason_code == "not_an_image"
    assert _refused(b"", "empty.tif").reason_code == "empty_document"


def test_loading_stops_when_the_time_budget_is_spent():
    buf = io.BytesIO()
    frame = Image.new("1", (1728, 2200), 1)
    frame.save(buf, format="TIFF", compression="group4", save_all=True, append_images=[frame] * 3)
    with pytest.raises(FaxDocumentError) as caught:
        load_pages(buf.getvalue(), "slow.tif", FaxLimits(timeout_seconds=1e-9))
    assert caught.value.reason_code == "timeout"
