"""The FAX request form: what it prints, and that the reader finds its geometry."""

from __future__ import annotations

import io
import itertools
import re
import subprocess

import numpy as np
import pytest
from PIL import Image

from madoguchi.ocr import form
from madoguchi.ocr._exec import poppler, zxing
from madoguchi.ocr.geometry import find_form
from madoguchi.ocr.pages import load_pages
from madoguchi.ocr.preprocess import ink_mask, rotate
from madoguchi.ocr.reader import read_fax

# Real Tesseract, poppler and zxing, started without a server fixture (tests/conftest.py).
pytestmark = pytest.mark.integration

NUMBER = "2031-1234-5673"


def _pdf(number: str | None, ticket: str | None = None) -> bytes:
    buf = io.BytesIO()
    form.write_form(buf, number, ticket, vendor_fax="03-5555-0199")
    return buf.getvalue()


def _pdfinfo(data: bytes, *args: str) -> str:
    return subprocess.run(
        ["pdfinfo", *args, "-"], input=data, capture_output=True, check=True
    ).stdout.decode()


def _pdffonts(tmp_path, data: bytes) -> str:
    path = tmp_path / "form.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdffonts", str(path)], capture_output=True, check=True).stdout.decode()


def test_form_is_one_a4_page_with_embedded_japanese_font(tmp_path):
    data = _pdf(NUMBER)
    info = _pdfinfo(data)
    assert re.search(r"^Pages:\s+1$", info, re.MULTILINE)
    assert "595.276 x 841.89 pts (A4)" in info
    fonts = _pdffonts(tmp_path, data)
    rows = [line.split() for line in fonts.splitlines()[2:]]
    assert rows and all("yes" in row[-5:-2] for row in rows)  # every font embedded
    assert any("IPAGothic" in line for line in fonts.splitlines())


def test_form_text_has_every_field_a_request_needs():
    text = subprocess.run(
        ["pdftotext", "-", "-"], input=_pdf(None), capture_output=True, check=True
    ).stdout.decode()
    for label in (
        "FAXお問い合わせ用紙",
        "サポートサービス番号",
        "会社名",
        "部署名",
        "ご担当者名",
        "電話番号",
        "FAX番号",
        "メールアドレス",
        "製品名",
        "ご利用環境",
        "お問い合わせ内容",
        "ご記入日",
        "問合せ番号",
    ):
        assert label in text, label


def test_write_form_accepts_a_path(tmp_path):
    target = tmp_path / "blank.pdf"
    form.write_form(target, None)
    assert target.read_bytes().startswith(b"%PDF-")


def test_preprinted_form_carries_the_number_in_a_qr_code():
    page = poppler.render_bytes(_pdf(NUMBER, "T-2026-000123"), dpi=150)[0]
    assert zxing.read_qr_codes(page) == ["SSN:203112345673 TKT:T-2026-000123"]


def test_blank_form_has_no_code():
    page = poppler.render_bytes(_pdf(None), dpi=150)[0]
    assert zxing.read_qr_codes(page) == []


@pytest.mark.parametrize("bad", ["2031-1234-5674", "12345", "abcd-efgh-ijkl"])
def test_a_number_failing_its_check_digit_is_never_printed(bad):
    with pytest.raises(ValueError, match="not a valid support service number"):
        form.write_form(io.BytesIO(), bad)


def test_a_malformed_ticket_number_is_refused():
    with pytest.raises(ValueError, match="not a ticket number"):
        form.write_form(io.BytesIO(), NUMBER, "2026-000123")


def test_digit_boxes_are_twelve_in_three_groups_inside_the_marks():
    boxes = form.DIGIT_BOXES_MM
    assert len(boxes) == 12
    gaps = [round(b.x0 - a.x1, 3) for a, b in itertools.pairwise(boxes)]
    assert gaps == [0, 0, 0, 6.0, 0, 0, 0, 6.0, 0, 0, 0]
    xs = [c[0] for c in form.MARK_CENTERS_MM]
    ys = [c[1] for c in form.MARK_CENTERS_MM]
    for rect in (*boxes, form.TICKET_BOX_MM, *form.FIELD_RECTS_MM.values()):
        assert min(xs) < rect.x0 < rect.x1 < max(xs)
        assert min(ys) < rect.y0 < rect.y1 < max(ys)


@pytest.mark.parametrize("angle", [-3.0, 0.0, 2.5])
def test_reader_finds_the_marks_after_skew_and_scaling(angle):
    dpi = 150
    page = poppler.render_bytes(_pdf(NUMBER), dpi=dpi)[0]
    scaled = page.resize((round(page.width * 0.95), round(page.height * 0.95)))
    turned = rotate(scaled, angle)
    geometry = find_form(ink_mask(turned), dpi / 25.4)
    assert geometry is not None
    assert geometry.marks_found == 4
    assert geometry.angle == pytest.approx(angle, abs=0.15)
    assert geometry.px_per_mm == pytest.approx(dpi / 25.4 * 0.95, rel=0.01)


def test_a_page_without_marks_is_not_taken_for_the_form():
    page = Image.new("L", (1654, 2339), 255)
    assert find_form(ink_mask(page)) is None
    noise = Image.fromarray(
        (np.random.default_rng(1).random((2339, 1654)) > 0.02).astype(np.uint8) * 255
    )
    assert find_form(ink_mask(noise)) is None


def test_clean_rendered_form_reads_by_qr_and_boxes_together():
    pages = load_pages(_pdf(NUMBER, "T-2026-000123"), "form.pdf")
    reading = read_fax(pages, full_text=False)
    assert reading.support_number is not None
    assert reading.support_number.display == NUMBER
    assert reading.method == "qr+zonal"
    assert reading.ticket_number == "T-2026-000123"
    zonal = [r for r in reading.reads if r.method == "zonal" and r.field == "support_number"]
    assert zonal[0].value == "203112345673"
    assert zonal[0].confidence > 0.8
