"""Handwritten numbers in the boxes, example numbers beside them, the sender's FAX number.

Real Tesseract, real PP-OCR (onnxruntime, the model in the rapidocr wheel)
and poppler on pages the corpus generator makes with fixed seeds.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from bench import fax_corpus
from madoguchi.config.settings import FaxLimits
from madoguchi.ocr import form
from madoguchi.ocr.reader import read_fax_document
from madoguchi.ticketing.support_number import luhn_check_digit

pytestmark = pytest.mark.integration

NUMBER = "203100010008"


def _read(path: Path):  # type: ignore[no-untyped-def]
    return read_fax_document(path.read_bytes(), path.name, FaxLimits(), full_text=False)


def _cells(item):  # type: ignore[no-untyped-def]
    """The form page's digit boxes as the reader cuts them out (its form found)."""
    from madoguchi.ocr.geometry import find_form, px_per_mm
    from madoguchi.ocr.pages import load_pages
    from madoguchi.ocr.preprocess import ink_mask, remove_streaks, to_gray
    from madoguchi.ocr.zonal import box_cells

    image = load_pages(item.path.read_bytes(), item.path.name)[0]
    gray, ink = remove_streaks(to_gray(image), ink_mask(image))
    geometry = find_form(ink, px_per_mm(image))
    assert geometry is not None
    return box_cells(gray, geometry)


def _settled_by_registered_only(path, registered, truth, *, others):  # type: ignore[no-untyped-def]
    """The reader settles the page on ``truth`` among ``registered``; with only ``others``
    registered (the truth not), on nothing, unless it read the number clearly alone."""
    reading = _read(path)
    settled, _ = reading.settled(registered)
    assert settled.support_number is not None and settled.support_number.digits == truth
    if reading.support_number is None:
        unregistered, _ = reading.settled(others)
        assert unregistered.support_number is None


def test_handwritten_boxes_are_decided_by_the_registered_numbers(tmp_path):
    # Seed 2: a small, slanted hand Tesseract cannot read as a line.
    item = fax_corpus.handwritten_form(NUMBER, tmp_path / "hw.tif", seed=2,
                                       sender_fax="045-640-1112")
    reading = _read(item.path)
    assert reading.support_number is None  # nothing accepted alone
    assert reading.boxes is not None and reading.boxes.readings[0].digits == NUMBER
    assert any("support number boxes cannot be read" in p for p in reading.problems)
    settled, choice = reading.settled({NUMBER, "203100020007"})
    assert choice is not None and choice.digits == NUMBER
    assert settled.support_number is not None and settled.support_number.digits == NUMBER
    assert settled.method == "boxes" and settled.problems == []
    assert 0.05 <= settled.confidence <= 1.0
    # Not registered: never accepted, however clear the reading.
    unregistered, why = reading.settled({"203100020007"})
    assert unregistered.support_number is None
    assert why is not None and "no registered number" in why.reason
    # Staff in triage read why the registered numbers did not settle it, not the first
    # reader's note about the boxes.
    assert unregistered.problems[0] == (
        f"page 1: the support number boxes cannot be decided ({why.reason})")
    assert not any("cannot be read" in p for p in unregistered.problems)


def test_a_blank_form_never_gives_its_example_number(tmp_path):
    # This blank form's 記入例 number (valid) was once accepted from the page text.
    item = fax_corpus.make_item("neg_missing", "fine", "g3-1d", 20260175830345, tmp_path)
    assert item.layout == "form"
    reading = _read(item.path)
    assert reading.support_number is None
    assert reading.problems == ["the form's support number boxes are empty"]
    assert reading.boxes is None


def _form_without_marks(example: str) -> bytes:
    """Our form, its registration marks painted over, the example number beside the boxes."""
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(form.PAGE_W_MM * mm, form.PAGE_H_MM * mm))
    form.draw_form(c, printed_digits=None, qr_digits=None)
    c.setFont(form.JAPANESE_FONT, 9)
    c.drawString(*form.to_pdf(72, 44.8), f"（記入例：{example}）")
    c.setFillGray(1)
    for cx, cy in form.MARK_CENTERS_MM:
        c.rect(*form.to_pdf(cx - 4, cy + 4), 8 * mm, 8 * mm, stroke=0, fill=1)
    c.showPage()
    c.save()
    return buf.getvalue()


def test_a_form_found_by_its_text_alone_takes_no_number_from_its_text(tmp_path):
    body = "72980939849"
    example = f"{body[:4]}-{body[4:8]}-{body[8:]}{luhn_check_digit(body)}"
    path = tmp_path / "nomarks.tif"
    fax_corpus.fax_from_pdf(_form_without_marks(example), path, resolution="fine",
                            container="g4", rng=random.Random(3), nprng=np.random.default_rng(3))
    reading = _read(path)
    assert reading.support_number is None
    assert reading.problems == ["the form's support number boxes are empty"]
    assert not any(r.value for r in reading.reads)


def test_a_serial_number_in_a_letter_is_not_the_support_number(tmp_path):
    serial = "40217730118" + luhn_check_digit("40217730118")
    lines = ["株式会社サンプルソフトウェア サポートセンター 御中", "いつもお世話になっております。",
             f"製品シリアル番号：{serial[:4]}-{serial[4:8]}-{serial[8:]}",
             "ログインできません。よろしくお願いいたします。"]
    from tests.faxfactory import letter_pdf, send_fax

    path = send_fax(letter_pdf(lines), tmp_path / "serial.tif", seed=4)
    reading = _read(path)
    assert reading.support_number is None


def test_the_tsi_hylafax_keeps_in_the_tiff_names_the_sender(tmp_path):
    from PIL import Image

    item = fax_corpus.make_item("neg_missing", "fine", "g4", 20260175830345, tmp_path)
    with Image.open(item.path) as im:
        im.load()
        page = im.copy()
    tagged = tmp_path / "recvq-fax00042.tif"
    page.save(tagged, format="TIFF", compression="group4", dpi=(204, 196),
              tiffinfo={270: "+81 45 640 1112"})
    reading = _read(tagged)
    assert reading.sender is not None
    assert (reading.sender.digits, reading.sender.source) == ("0456401112", "tsi")


def test_our_forms_text_is_read_field_by_field_as_label_and_value(tmp_path):
    from bench.pagetext import recall

    item = fax_corpus.make_item("form_typed", "standard", "g3-2d", 31, tmp_path)
    reading = read_fax_document(item.path.read_bytes(), item.path.name, FaxLimits())
    lines = reading.text.splitlines()
    assert [ln.split(":")[0] for ln in lines[:2]] == ["ご記入日", "会社名"]
    assert "お問い合わせ内容:" in lines
    # At standard resolution full-page OCR kept about half of this page's inquiry.
    assert recall(item.inquiry, reading.text) >= 0.85


def test_a_gateways_caller_id_names_the_sender():
    from types import SimpleNamespace

    from madoguchi.ingest.fax import gateway_caller

    mail = SimpleNamespace(subject="FAX受信 045-640-1112 から (1枚)", from_name="FAX Gateway")
    caller = gateway_caller(mail)  # type: ignore[arg-type]
    assert caller is not None and (caller.digits, caller.source) == ("0456401112", "caller_id")
    assert gateway_caller(SimpleNamespace(subject="FAX受信", from_name="")) is None  # type: ignore[arg-type]


def test_a_large_hand_once_misread_as_another_valid_number_is_read_right(tmp_path):
    # A large hand over the box lines: both read the two 3s as 5s (815652258949,
    # valid), PP-OCR hardly seeing a digit there, until the strokes over the box
    # lines were kept; the bench once accepted the misreading. Now the 3s' tops on
    # the top line stay with them, and the boxes read right on their own.
    item = fax_corpus.make_item("form_handwritten", "fine", "g3-2d", 20260175800378, tmp_path)
    assert item.expected_number == "813632258949"
    reading = _read(item.path)
    assert reading.support_number is not None
    assert reading.support_number.digits == item.expected_number
    assert reading.boxes is None  # nothing left for the registered numbers to decide
    # And the misreading, were it registered too, gets nowhere.
    settled, _ = reading.settled({"815652258949", "813632258949"})
    assert settled.support_number == reading.support_number


def _boxed(draw: list[tuple[slice, slice]]) -> np.ndarray:
    """A 10 px/mm crop of one 9×12 mm box (1 mm lines at rows 20, 140, columns 20, 110)."""
    ink = np.zeros((161, 131), dtype=bool)
    ink[19:22, 20:111] = ink[139:142, 20:111] = True
    ink[20:141, 19:22] = ink[20:141, 109:112] = True
    for rows, cols in draw:
        ink[rows, cols] = True
    return ink


def test_a_stroke_on_or_over_the_box_lines_stays_with_its_digit():
    from madoguchi.ocr.zonal import _OVERRUN_MM, _box_ink, _Lines

    lines = _Lines(left=20, right=110, top=20, bottom=140)
    # A 7 written large: its bar drawn on the top line (rows 17-23, a pen wider than the
    # line), its stem running out over the bottom line to row 150.
    seven = _boxed([(slice(17, 24), slice(35, 95)), (slice(17, 151), slice(85, 90))])
    ink = np.zeros_like(seven)
    # The crop returned starts _OVERRUN_MM above the top line (or at the ink's top),
    # 0.5 mm left of the left line.
    got = _box_ink(seven, lines, 10.0)
    y0 = max(0, 20 - round(_OVERRUN_MM * 10))
    ink[y0 : y0 + got.shape[0], 15 : 15 + got.shape[1]] = got
    assert ink[17:19, 35:95].all() and ink[22:24, 35:95].all()  # the bar, both sides of the line
    assert ink[142:151, 85:90].all()  # the stem past the bottom line, and where it crosses it
    assert ink[19:22, 85:90].all()
    assert not ink[139:142, 40:80].any()  # the line itself is gone where no stroke is on it
    assert not ink[:, :22].any() and not ink[:, 109:].any()  # and so are the side lines
    # Ink outside the box that touches no stroke inside it (the 記入例 text above) is left out.
    text = _boxed([(slice(2, 10), slice(30, 100)), (slice(60, 100), slice(60, 66))])
    kept = _box_ink(text, lines, 10.0)
    assert kept[:16].sum() == 0 and kept.sum() == 40 * 6


def test_a_large_hand_over_the_box_lines_is_read(tmp_path):
    # Seven of its digits reach over the box lines: the 7s' bars lie on the top line.
    # With the lines cut away with a margin, as before, PP-OCR read the 7s as 1s; then
    # the registered numbers had to decide it, now the boxes read clearly on their own.
    item = fax_corpus.make_item("form_handwritten", "standard", "g3-2d", 20260175900354, tmp_path)
    assert item.style == "large"
    reading = _read(item.path)
    assert reading.support_number is not None and reading.boxes is None
    assert reading.support_number.digits == item.expected_number
    settled, _ = reading.settled({item.expected_number, "203100020007"})
    assert settled.support_number is not None
    assert settled.support_number.digits == item.expected_number


def test_the_demos_handwritten_fax_is_read_by_the_registered_numbers():
    # demo/fax/fax0005.tif (scripts/make_demo_faxes.py): the page the demo's desk turns into
    # さくら商事's ticket, its number from the boxes and the closed set, its sender from the
    # header line (tests/test_fax_sender.py ingests the same page through the pipeline).
    demo = Path(__file__).resolve().parents[1] / "demo" / "fax" / "fax0005.tif"
    reading = _read(demo)
    assert reading.support_number is None
    assert reading.sender is not None and reading.sender.digits == "0312345679"
    settled, _ = reading.settled({NUMBER, "203100020007"})
    assert settled.support_number is not None and settled.support_number.digits == NUMBER
    assert settled.method == "boxes"


@pytest.mark.parametrize(
    ("make", "truth"),
    [
        # A quick hand at standard resolution: two 7s whose bars the FAX merged into the
        # boxes' top line, a 1 to PP-OCR (bench/handwriting_diag.py, development seed 31337).
        (lambda tmp: fax_corpus.handwritten_form(
            "180093322147", tmp / "quick.tif", seed=269359, resolution="standard",
            container="g3-1d", style="quick"), "180093322147"),
        # The same in a corpus item (form_handwritten, standard, seed 4242's plan).
        (lambda tmp: fax_corpus.make_item(
            "form_handwritten", "standard", "g3-1d", 4242132762, tmp), "857174678386"),
    ],
)
def test_a_quick_hand_pp_ocr_hesitates_on_is_read_with_the_networks_opinion(
    tmp_path, make, truth
):
    from madoguchi.ocr import digit_cnn, ppocr
    from madoguchi.ocr.box_digits import box_probabilities, combined, is_clear
    from madoguchi.ticketing.rules.fax_number import choose_number, valid_readings

    item = make(tmp_path)
    assert item.expected_number == truth
    glyphs = [cell.glyph for cell in _cells(item)]
    registered = {truth, "203100020007"}
    # PP-OCR alone: its likeliest valid reading is the truth, but not by the margin.
    pp = ppocr.digit_probabilities(glyphs)
    assert not is_clear(pp)
    alone = choose_number(valid_readings(pp.tolist()), pp.tolist(), registered)
    assert alone.digits is None
    # With the network's second opinion the registered numbers decide it.
    both = box_probabilities(glyphs)
    assert np.allclose(both, combined(pp, digit_cnn.recognise(glyphs)))
    assert choose_number(valid_readings(both.tolist()), both.tolist(), registered).digits == truth
    # And so does the reader, end to end; an unregistered reading is still never accepted.
    _settled_by_registered_only(item.path, registered, truth, others={"203100020007"})


def test_boxes_pp_ocr_reads_clearly_keep_pp_ocrs_probabilities():
    from madoguchi.ocr.box_digits import box_probabilities, combined

    # The form's own printed digits: PP-OCR is clear, the network is not asked.
    glyphs = [_printed_digit(d) for d in NUMBER]
    from madoguchi.ocr import ppocr

    assert np.array_equal(box_probabilities(glyphs), ppocr.digit_probabilities(glyphs))
    # The combination: a power of the network's, floored like PP-OCR's.
    pp = np.array([[0.5, 0.4] + [1e-4] * 8])
    second = np.array([[0.01, 0.9] + [0.01] * 8])
    got = combined(pp, second)
    assert got[0, 1] > got[0, 0] and got.min() >= ppocr.PROBABILITY_FLOOR


def _printed_digit(digit: str) -> np.ndarray:
    """One bold printed digit as the boxes' ink (10 px/mm, about 7 mm tall)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 90)
    image = Image.new("L", (120, 120), 255)
    ImageDraw.Draw(image).text((20, 5), digit, fill=0, font=font)
    ink = np.asarray(image) < 128
    ys, xs = np.nonzero(ink)
    return ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def test_a_sevens_bar_on_the_top_line_at_standard_resolution_is_read_as_a_seven(tmp_path):
    # A large hand at standard resolution (98 dpi): box 2's 7 has its bar on the top line,
    # as thick as the line, and the line's removal took it: PP-OCR read a 1 (p 0.6), and
    # the registered numbers could not settle it (only 48 times as likely as 516773491639).
    # Read again with the top line kept, the box is a 7; its 1 keeps its own probability.
    # (The network, trained since on the reader's own cuts, sees the 7 without its bar too.)
    from madoguchi.ocr import ppocr
    from madoguchi.ocr.box_digits import box_probabilities, with_bars
    from madoguchi.ticketing.rules.fax_number import choose_number, valid_readings

    item = fax_corpus.make_item("form_handwritten", "standard", "pdf", 4242132749, tmp_path)
    truth = "576173491639"
    assert (item.expected_number, item.style) == (truth, "large")
    cells = _cells(item)
    glyphs, bars = [c.glyph for c in cells], [c.bar for c in cells]
    seven = cells[1]
    assert seven.bar is not None
    alone = ppocr.digit_probabilities(glyphs)
    assert alone[1].argmax() == 1  # the bar gone with the line: a 1 to PP-OCR
    assert ppocr.digit_probabilities([seven.bar])[0].argmax() == 7
    barred = with_bars(alone, bars)
    assert barred[1].argmax() == 7 and barred[1, 1] == alone[1, 1]
    # The true 1s (boxes 4 and 9) stay 1s, whatever their reading with the line kept.
    assert barred[3].argmax() == 1 and barred[8].argmax() == 1
    assert np.array_equal(np.delete(barred, 7, axis=1), np.delete(alone, 7, axis=1))
    both = box_probabilities(glyphs, bars=bars)
    assert both[1].argmax() == 7 and both[3].argmax() == 1 and both[8].argmax() == 1
    registered = {truth, "516773491639", "203100020007"}
    rows = both.tolist()
    assert choose_number(valid_readings(rows), rows, registered).digits == truth
    # The reader, end to end: the registered numbers settle it; unregistered, never.
    _settled_by_registered_only(item.path, registered, truth, others={"516773491639"})
    # A box whose reading with the line kept is no 7 is left as it was.
    p = np.full((1, 10), 1e-4)
    p[0, 1] = 0.9
    assert np.array_equal(with_bars(p, [glyphs[3]]), p)


def test_a_digit_pp_ocr_sees_only_faintly_is_seen_when_the_network_agrees(tmp_path):
    # A neat hand at standard resolution (bench/handwriting_diag.py, development seed 4242):
    # PP-OCR scores box 8's 1 at 0.02 and every other digit near nothing (its scores need not
    # sum to one); the network is sure it is a 1 (0.999). The plain product stayed under the
    # decision's digit floor (0.05) and sent the page to triage; lifted towards a sum of one
    # (box_digits.MAX_LIFT), the digit is seen and the registered numbers settle the page.
    from madoguchi.ocr import digit_cnn, ppocr
    from madoguchi.ocr.box_digits import MAX_LIFT, SECOND_FLOOR, box_probabilities
    from madoguchi.ticketing.rules.fax_number import MIN_DIGIT, choose_number, valid_readings

    item = fax_corpus.make_item("form_handwritten", "standard", "g4", 4242132732, tmp_path)
    truth = "316659014047"
    assert (item.expected_number, item.style) == (truth, "neat")
    cells = _cells(item)
    glyphs = [c.glyph for c in cells]
    pp = ppocr.digit_probabilities(glyphs)
    second = digit_cnn.recognise(glyphs)
    assert pp[7].argmax() == 1 and pp[7, 1] < MIN_DIGIT and pp[7].sum() < MIN_DIGIT
    assert second[7].argmax() == 1
    plain = pp * np.maximum(second, SECOND_FLOOR)
    assert plain[7, 1] < MIN_DIGIT  # the product alone: not seen
    p = box_probabilities(glyphs, bars=[c.bar for c in cells])
    assert np.allclose(p[7], np.clip(plain[7] * min(MAX_LIFT, 1 / plain[7].sum()),
                                     ppocr.PROBABILITY_FLOOR, 1.0))
    assert p[7, 1] >= MIN_DIGIT
    rows = p.tolist()
    registered = {truth, "203100020007"}
    assert choose_number(valid_readings(rows), rows, registered).digits == truth
    # The reader, end to end: the registered numbers settle it; unregistered, never.
    _settled_by_registered_only(item.path, registered, truth, others={"203100020007"})


def test_the_lift_never_makes_a_digit_of_a_box_without_one():
    from madoguchi.ocr.box_digits import MAX_LIFT, combined
    from madoguchi.ticketing.rules.fax_number import MIN_DIGIT

    # A blot: PP-OCR sees no digit (its scores sum to 0.001); the network is sure of an 8.
    pp = np.full((1, 10), 1e-4)
    second = np.full((1, 10), 1e-4)
    second[0, 8] = 0.999
    got = combined(pp, second)
    assert got[0, 8] == pytest.approx(1e-4 * 0.999 * MAX_LIFT, rel=1e-3)
    assert got.max() < MIN_DIGIT
    # A row already summing to more than one is never scaled down.
    pp = np.full((1, 10), 0.5)
    assert np.allclose(combined(pp, np.full((1, 10), 1.0)), 0.5)
