"""Reading the support number off real FAX files: Tesseract, zxing-cpp, poppler, libtiff.

Every document here is made by the bench's corpus generator (reportlab
drawing, poppler rendering, FAX degradation, Pillow's CCITT encoders), with a
fixed seed, so each test reads the same pixels every run.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from bench import fax_corpus
from madoguchi.config.settings import FaxLimits
from madoguchi.ocr import form, preprocess, second_look
from madoguchi.ocr._exec import poppler
from madoguchi.ocr.pages import load_pages
from madoguchi.ocr.reader import FaxReading, read_fax_document
from madoguchi.ocr.ticket_text import find_ticket_number
from madoguchi.ticketing.support_number import luhn_check_digit

# Real Tesseract, poppler and zxing, started without a server fixture (tests/conftest.py).
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fax-corpus")


def _read(item: fax_corpus.CorpusItem, *, full_text: bool = False) -> FaxReading:
    return read_fax_document(
        item.path.read_bytes(), item.path.name, FaxLimits(), full_text=full_text
    )


def _tiff_compression(path: Path) -> int:
    with Image.open(path) as im:
        return int(im.tag_v2[259])


@pytest.mark.parametrize(
    ("resolution", "container", "seed"),
    [("fine", "g4", 11), ("standard", "g3-1d", 12), ("standard", "g3-2d", 13), ("fine", "pdf", 14)],
)
def test_preprinted_form_is_read_by_qr_and_boxes_agreeing(corpus_dir, resolution, container, seed):
    item = fax_corpus.make_item("form_printed", resolution, container, seed, corpus_dir)
    reading = _read(item)
    assert reading.support_number is not None
    assert reading.support_number.digits == item.expected_number
    assert reading.method == "qr+zonal"
    assert reading.confidence == 1.0
    assert {r.method for r in reading.reads if r.value} == {"qr", "zonal"}
    assert reading.problems == []


def test_fax_files_are_real_class_f_tiffs(corpus_dir):
    g3 = fax_corpus.make_item("form_printed", "standard", "g3-2d", 21, corpus_dir)
    g4 = fax_corpus.make_item("form_printed", "fine", "g4", 22, corpus_dir)
    assert _tiff_compression(g3.path) == 3  # CCITT T.4 (G3)
    assert _tiff_compression(g4.path) == 4  # CCITT T.6 (G4)
    with Image.open(g3.path) as im:
        assert im.mode == "1" and im.width == 1728
        assert im.info["dpi"] == (204.0, 98.0)
        assert im.tag_v2.get(292) == 1  # T4Options: 2-D coding


def test_standard_resolution_pages_are_stretched_to_square_pixels(corpus_dir):
    item = fax_corpus.make_item("form_printed", "standard", "g4", 23, corpus_dir)
    with Image.open(item.path) as raw:
        rows = raw.height
    page = load_pages(item.path.read_bytes(), item.path.name)[0]
    assert page.height == round(rows * 204 / 98)
    assert page.info["fax_resolution"] == "standard"
    assert page.info["dpi"] == (204.0, 204.0)


@pytest.mark.parametrize(
    ("resolution", "container", "seed"),
    [("standard", "g3-1d", 31), ("fine", "g4", 32), ("standard", "pdf", 33)],
)
def test_blank_form_with_typed_digits_is_read_from_the_boxes(
    corpus_dir, resolution, container, seed
):
    item = fax_corpus.make_item("form_typed", resolution, container, seed, corpus_dir)
    reading = _read(item)
    assert reading.support_number is not None
    assert reading.support_number.digits == item.expected_number
    assert reading.method == "zonal"
    assert 0.5 < reading.confidence <= 1.0


@pytest.mark.parametrize(
    ("resolution", "container", "seed"), [("fine", "g4", 41), ("standard", "g3-2d", 42)]
)
def test_free_form_page_is_read_by_full_page_ocr_and_keeps_its_text(
    corpus_dir, resolution, container, seed
):
    item = fax_corpus.make_item("freeform", resolution, container, seed, corpus_dir)
    reading = _read(item, full_text=True)
    assert reading.support_number is not None
    assert reading.support_number.digits == item.expected_number
    assert reading.method == "fullpage"
    assert "株式会社" in reading.text
    assert "御中" in reading.text
    assert len(reading.page_images) == reading.page_count == item.pages
    assert all(png.startswith(b"\x89PNG") for png in reading.page_images)


def test_follow_up_form_quotes_the_ticket_number(corpus_dir):
    item = next(
        it
        for seed in range(51, 80)
        if (it := fax_corpus.make_item("followup", "fine", "g4", seed, corpus_dir)).layout == "form"
    )
    reading = _read(item, full_text=True)
    assert reading.support_number is not None
    assert reading.support_number.digits == item.expected_number
    assert reading.ticket_number == item.expected_ticket
    assert any(r.field == "ticket_number" and r.method == "zonal" for r in reading.reads)


def test_follow_up_letter_quotes_the_ticket_number(corpus_dir):
    item = next(
        it
        for seed in range(81, 120)
        if (it := fax_corpus.make_item("followup", "standard", "g3-1d", seed, corpus_dir)).layout
        == "free"
    )
    reading = _read(item, full_text=True)
    assert reading.ticket_number == item.expected_ticket
    assert reading.support_number is not None
    assert reading.support_number.digits == item.expected_number


@pytest.mark.parametrize("seed", [61, 62])
def test_wrong_check_digit_is_unreadable_never_a_guess(corpus_dir, seed):
    item = fax_corpus.make_item("neg_checkdigit", "standard", "g4", seed, corpus_dir)
    reading = _read(item)
    assert reading.support_number is None
    assert reading.method is None
    assert any("check digit" in p for p in reading.problems)


def test_smudged_boxes_are_unreadable_and_not_second_guessed_from_text(corpus_dir):
    item = fax_corpus.make_item("neg_smudged", "fine", "g3-2d", 71, corpus_dir)
    reading = _read(item)
    assert reading.support_number is None
    assert any("covered in ink" in p for p in reading.problems)
    assert not any(r.method == "fullpage" for r in reading.reads)


def test_form_without_any_number_goes_to_triage(corpus_dir):
    item = next(
        it
        for seed in range(91, 130)
        if (it := fax_corpus.make_item("neg_missing", "fine", "g4", seed, corpus_dir)).layout
        == "form"
    )
    reading = _read(item)
    assert reading.support_number is None
    assert reading.problems == ["the form's support number boxes are empty"]


def test_qr_and_printed_digits_that_disagree_are_unreadable(corpus_dir, tmp_path):
    printed = "203112345673"
    coded = "49150001234" + luhn_check_digit("49150001234")
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(form.PAGE_W_MM * mm, form.PAGE_H_MM * mm))
    form.draw_form(c, printed_digits=printed, qr_digits=coded)
    c.showPage()
    c.save()
    path = tmp_path / "disagree.tif"
    fax_corpus.fax_from_pdf(
        buf.getvalue(),
        path,
        resolution="fine",
        container="g4",
        rng=random.Random(5),
        nprng=np.random.default_rng(5),
    )
    reading = read_fax_document(path.read_bytes(), path.name, FaxLimits(), full_text=False)
    assert reading.support_number is None
    assert any(
        f"QR code says {coded[:4]}-{coded[4:8]}-{coded[8:]} but the boxes read {printed}" in p
        for p in reading.problems
    )
    assert {r.value for r in reading.reads if r.field == "support_number"} == {coded, printed}


def test_blank_trailing_pages_are_kept_but_not_read(corpus_dir):
    item = next(
        it
        for seed in range(140, 200)
        if (it := fax_corpus.make_item("form_printed", "fine", "g4", seed, corpus_dir)).pages == 2
    )
    reading = _read(item, full_text=True)
    assert reading.page_count == 2
    assert len(reading.page_images) == 2
    assert reading.support_number is not None
    assert all(r.page == 1 for r in reading.reads)


def _letter_fax(path: Path, number: str, *, font: str, labelled: bool, seed: int) -> Path:
    """A short letter with the number in its first line, sent at standard resolution.

    Mincho has hairline horizontals, the strokes a 98-dpi FAX breaks. Only
    the IPA fonts every install has (fonts-ipafont) are used, so the page is
    the same on every machine.
    """
    fax_corpus._register_fonts()
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(form.PAGE_W_MM * mm, form.PAGE_H_MM * mm))

    def text(x: float, y: float, value: str, face: str, size: float) -> None:
        c.setFont(face, size)
        c.drawString(*form.to_pdf(x, y), value)

    grouped = f"{number[:4]}-{number[4:8]}-{number[8:]}"
    if labelled:
        text(25, 25, "サポートサービス番号：", "IPAMincho", 11.5)
        text(87, 25, grouped, font, 12.5)
    else:
        text(25, 25, grouped, font, 12.5)
    lines = (
        "株式会社サンプルソフトウェア",
        "サポートセンター 御中",
        "いつもお世話になっております。",
        "ログイン画面で正しいパスワードを入力してもエラーが表示されます。",
        "よろしくお願いいたします。",
    )
    for i, line in enumerate(lines):
        text(25, 37 + 8 * i, line, "IPAMincho", 10.5)
    c.showPage()
    c.save()
    fax_corpus.fax_from_pdf(
        buf.getvalue(),
        path,
        resolution="standard",
        container="g3-1d",
        rng=random.Random(seed),
        nprng=np.random.default_rng(seed),
    )
    return path


@pytest.mark.parametrize(
    ("number", "font", "labelled", "seed", "first_read"),
    [
        # Full-page OCR reads 3 as 9 in the broken first 5 (page 1 of the
        # first look: "598073021575 fails its check digit").
        ("558073021575", "IPAMincho", False, 5, "598073021575"),
        # Reads the check digit 2 as 9, after the label.
        ("298344417472", "IPAPMincho", True, 14, "298344417479"),
    ],
)
def test_second_look_reads_a_standard_resolution_number_the_first_look_misread(
    tmp_path, number, font, labelled, seed, first_read
):
    path = _letter_fax(tmp_path / "letter.tif", number, font=font, labelled=labelled, seed=seed)
    reading = read_fax_document(path.read_bytes(), path.name, FaxLimits(), full_text=False)
    first = [r for r in reading.reads if not r.note.startswith("second look")]
    assert [(r.raw, r.value) for r in first] == [(first_read, None)]
    assert "check digit fails" in first[0].note
    assert reading.support_number is not None
    assert reading.support_number.digits == number
    assert reading.method == "fullpage"
    assert reading.problems == []
    second = [r for r in reading.reads if r.value == number]
    assert len(second) == 1 and second[0].note.startswith("second look, top of the page:")
    agree = int(second[0].note.split(": ")[1].split(" of ")[0])
    assert agree >= second_look.SECOND_LOOK_MIN_AGREE + 2  # not a near thing
    assert 0.5 < reading.confidence <= 1.0


def test_second_look_never_fixes_a_wrong_check_digit(tmp_path):
    written = "558073021576"  # the number above with its check digit off by one
    assert luhn_check_digit(written[:11]) != written[11]
    path = _letter_fax(tmp_path / "letter.tif", written, font="IPAMincho", labelled=False, seed=5)
    reading = read_fax_document(path.read_bytes(), path.name, FaxLimits(), full_text=False)
    assert reading.support_number is None
    assert reading.method is None
    assert any("fails its check digit" in p for p in reading.problems)
    second = [r for r in reading.reads if r.note.startswith("second look")]
    assert second and all(r.value is None for r in second)
    assert any(r.raw.replace("-", "") == written for r in second)


def test_closing_down_the_columns_rejoins_a_stroke_split_between_scan_lines():
    ink = np.zeros((12, 10), dtype=bool)
    ink[3, 2:8] = True  # the upper half of a stroke
    ink[5, 2:8] = True  # the lower half, one scan line lower
    ink[9, 5] = True  # a speck
    closed = preprocess.close_vertically(ink, 3)
    assert closed[3:6, 2:8].all()
    assert closed.sum() == 3 * 6 + 1  # nothing grew, the speck stayed a speck
    assert not preprocess.close_vertically(ink[:, :1], 3).any()


def test_ticket_number_is_found_through_ocr_dashes():
    assert find_ticket_number("問合せ番号: T—2026—000123") == "T-2026-000123"
    assert find_ticket_number("問合せ番号：丁-2026-000123") == "T-2026-000123"
    assert find_ticket_number("ＴＥＬ 03-2026-000123") is None
    assert find_ticket_number("AT-2026-000123") is None


def _letter_page(dpi: int = 200) -> Image.Image:
    buf = io.BytesIO()
    form.write_form(buf, None)
    return poppler.render_bytes(buf.getvalue(), dpi=dpi)[0]


@pytest.mark.parametrize("angle", [-2.6, 1.4, 3.0])
def test_projection_profile_measures_the_skew(angle):
    turned = preprocess.rotate(_letter_page(100), angle)
    assert preprocess.skew_angle(preprocess.ink_mask(turned)) == pytest.approx(angle, abs=0.15)


def test_standard_resolution_is_stretched_by_the_dpi_ratio():
    page = Image.new("1", (1728, 1145), 1)
    fixed = preprocess.fix_aspect(page, 204, 98)
    assert fixed.size == (1728, round(1145 * 204 / 98))
    assert preprocess.fix_aspect(page, 204, 204) is page


def test_despeckle_removes_isolated_specks_but_not_strokes():
    rng = np.random.default_rng(3)
    page = np.full((400, 400), 255, np.uint8)
    page[100:110, 50:350] = 0  # a stroke
    specks = rng.random(page.shape) < 0.01
    page[specks] = 0
    out = np.asarray(preprocess.despeckle(Image.fromarray(page)))
    assert (out[100:110, 60:340] == 0).all()
    outside = np.ones(page.shape, bool)
    outside[95:115, :] = False
    assert (out[outside] == 0).sum() < specks[outside].sum() * 0.05
