"""The decisions on what the methods read: each returns a Verdict (value, reads, problems).

Pages here are what the reader's steps made of a FAX (QR codes, digit
boxes), written down by hand: the rules are tested without OCR.
"""

from __future__ import annotations

from madoguchi.config import SupportNumberSettings
from madoguchi.ocr.decide import ZONAL_MIN_CONFIDENCE, decide_from_forms, decide_ticket
from madoguchi.ocr.fulltext import AnalysedPage
from madoguchi.ocr.pages import Deadline
from madoguchi.ocr.qr import QrRead
from madoguchi.ocr.verdict import Accepted, MethodRead
from madoguchi.ocr.zonal import BoxStatus, ZonalRead

CFG = SupportNumberSettings()
NUMBER = "203100010008"
OTHER = "203112345673"


def _form(page: int, qr: str | None, boxes: ZonalRead | None) -> AnalysedPage:
    codes = [QrRead(f"SSN:{qr}", qr, None)] if qr else []
    return AnalysedPage(number=page, blank=False, qr=codes, zonal=boxes)


def _boxes(digits: str, confidence: float = 0.9) -> ZonalRead:
    return ZonalRead(BoxStatus.READ, digits, confidence)


def test_code_and_boxes_that_agree_accept_the_number_as_qr_plus_zonal() -> None:
    verdict = decide_from_forms([_form(1, NUMBER, _boxes(NUMBER))], CFG)
    assert verdict.value is not None and verdict.value.number.digits == NUMBER
    assert (verdict.value.method, verdict.value.confidence) == ("qr+zonal", 1.0)
    assert [(r.method, r.value) for r in verdict.reads] == [("qr", NUMBER), ("zonal", NUMBER)]
    assert verdict.problems == ()


def test_code_and_boxes_that_disagree_accept_nothing_and_say_why() -> None:
    verdict = decide_from_forms([_form(1, NUMBER, _boxes(OTHER))], CFG)
    assert verdict.value is None
    assert verdict.problems == (
        f"page 1: the QR code says 2031-0001-0008 but the boxes read {OTHER}",
    )
    assert len(verdict.reads) == 2


def test_boxes_read_without_confidence_and_no_code_go_to_triage() -> None:
    verdict = decide_from_forms([_form(1, None, _boxes(NUMBER, ZONAL_MIN_CONFIDENCE / 2))], CFG)
    assert verdict.value is None
    assert verdict.problems == (
        f"page 1: the support number boxes cannot be read "
        f"(confidence below {ZONAL_MIN_CONFIDENCE:.2f})",
    )
    [read] = verdict.reads
    assert (read.raw, read.value) == (NUMBER, None)


def test_empty_boxes_on_a_blank_form_leave_the_decision_to_the_page_text() -> None:
    verdict = decide_from_forms([_form(1, None, ZonalRead(BoxStatus.EMPTY, "", 0.0))], CFG)
    assert (verdict.value, verdict.reads, verdict.problems) == (None, (), ())


def test_two_pages_with_different_numbers_accept_neither() -> None:
    pages = [_form(1, NUMBER, None), _form(2, OTHER, None)]
    verdict = decide_from_forms(pages, CFG)
    assert verdict.value is None
    assert verdict.problems == (
        f"pages carry different support numbers: {NUMBER}, {OTHER}",
    )


def test_zonal_number_alone_keeps_its_confidence() -> None:
    verdict = decide_from_forms([_form(1, None, _boxes(NUMBER, 0.8))], CFG)
    assert isinstance(verdict.value, Accepted)
    assert (verdict.value.method, verdict.value.confidence) == ("zonal", 0.8)


def test_ticket_reads_that_disagree_give_no_ticket() -> None:
    earlier = (
        MethodRead("zonal", "ticket_number", 1, "T-2026-000123", "T-2026-000123", 0.9),
        MethodRead("qr", "ticket_number", 1, "SSN:… TKT:T-2026-000124", "T-2026-000124", 1.0),
    )
    verdict = decide_ticket([_form(1, None, None)], "T", earlier, Deadline(60))
    assert verdict.value is None
    assert verdict.problems == ("問合せ番号 reads disagree: T-2026-000123, T-2026-000124",)
    assert verdict.reads == ()  # no page text was read: nothing more to record


def test_ticket_reads_that_agree_give_the_ticket() -> None:
    earlier = (MethodRead("zonal", "ticket_number", 1, "T-2026-000123", "T-2026-000123", 0.9),)
    verdict = decide_ticket([_form(1, None, None)], "T", earlier, Deadline(60))
    assert (verdict.value, verdict.problems) == ("T-2026-000123", ())
