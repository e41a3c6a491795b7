"""Reading the support service number, and a follow-up's 問合せ番号, off FAX pages.

Three ways to read the number, strongest first:

* ``qr``: the code on a form we pre-printed (zxing-cpp).
* ``zonal``: the twelve digit boxes of our form, located from the form's
  registration marks (an affine fit, so skew and scaling do not matter), box
  lines cut away, the twelve digits set as one monospaced line and read by
  Tesseract twice, with the digit whitelist and without it (``--psm 7``);
  both reads must agree.
* ``fullpage``: Japanese OCR of the whole page (``jpn+eng``), then the same
  search the email path uses (the number at the top, or after its label);
  the digits found are read a second time from their own spot on the page
  with the English model, and must not read differently. When that first
  look accepts nothing (full-page OCR misreads digits whose thin strokes a
  standard-resolution FAX broke, or garbles the label), a second look reads
  every place a number may stand again, prepared ten ways, and accepts a
  number only when enough of those reads agree on it and none saw another.

Nothing is guessed. A number is accepted only when its check digit holds and,
when a code and printed digits were both read, when they agree; a form whose
boxes hold something unreadable is not second-guessed by full-page OCR. Every
read is kept in ``FaxReading.reads`` for the record, and every reason for
sending the FAX to triage in ``problems``.

This module runs the steps in order; each lives in its own module:
``geometry`` (the form's marks), ``qr``, ``zonal`` (the boxes),
``fulltext`` (full-page OCR and the search), ``second_look``, and
``decide``, whose decisions each return a ``Verdict``.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace

from PIL import Image

from madoguchi.config import SupportNumberSettings
from madoguchi.config.settings import FaxLimits
from madoguchi.ocr.decide import (
    BoxEvidence,
    box_evidence,
    decide_from_forms,
    decide_from_text,
    decide_ticket,
)
from madoguchi.ocr.form import DigitLayout, layout_for
from madoguchi.ocr.form_text import form_text
from madoguchi.ocr.fulltext import AnalysedPage, level
from madoguchi.ocr.fulltext import full_text as page_text
from madoguchi.ocr.geometry import find_form, px_per_mm
from madoguchi.ocr.pages import Deadline, load_pages
from madoguchi.ocr.preprocess import binarise, ink_mask, is_blank, remove_streaks, to_gray
from madoguchi.ocr.qr import read_qr
from madoguchi.ocr.sender import SenderFax, sender_fax
from madoguchi.ocr.verdict import Method, MethodRead, Verdict
from madoguchi.ocr.zonal import read_digit_boxes, read_ticket_box
from madoguchi.ticketing.rules.fax_number import Choice, boxes_decided, choose_number
from madoguchi.ticketing.support_number import SupportNumber, parse_support_number

__all__ = ["FaxReading", "MethodRead", "read_fax", "read_fax_document"]


@dataclass
class FaxReading:
    """What the reader made of a FAX.

    ``support_number`` None means unreadable: the caller flags the ticket
    ``unreadable_fax`` and ``problems`` says why.
    """

    support_number: SupportNumber | None
    ticket_number: str | None
    method: Method | None
    confidence: float
    reads: list[MethodRead]
    text: str
    page_count: int
    problems: list[str]
    page_images: list[bytes] = field(default_factory=list, repr=False)
    timings: dict[str, float] = field(default_factory=dict)
    # Filled boxes no method could read alone: for the registered numbers to decide.
    boxes: BoxEvidence | None = None
    # The sending machine's own number, as it announced it (its header line, its TSI).
    sender: SenderFax | None = None

    @property
    def readable(self) -> bool:
        return self.support_number is not None

    def settled(
        self,
        registered: Collection[str],
        sender_numbers: Collection[str] = (),
        settings: SupportNumberSettings | None = None,
    ) -> tuple[FaxReading, Choice | None]:
        """This reading with the boxes decided by the closed set of registered numbers.

        ``registered``: which of ``boxes.readings`` are contracts' numbers;
        ``sender_numbers``: the numbers of the customer whose registered FAX
        number sent it. Unchanged (and no choice) when there is nothing to
        decide; the choice says why when it accepts nothing.
        """
        if self.support_number is not None or self.boxes is None:
            return self, None
        choice = choose_number(
            self.boxes.readings, self.boxes.probabilities, registered, sender_numbers
        )
        read = MethodRead(
            "zonal",
            "support_number",
            self.boxes.page,
            self.boxes.readings[0].digits,
            choice.digits,
            0.0,
            f"registered numbers: {choice.reason}",
        )
        problems = boxes_decided(self.problems, self.boxes.page, choice)
        if choice.digits is None:
            return replace(self, reads=[*self.reads, read], problems=problems), choice
        number = parse_support_number(choice.digits, settings or SupportNumberSettings())
        assert number is not None  # a valid reading by construction
        confidence = min(
            self.boxes.probabilities[i][int(d)] for i, d in enumerate(number.digits)
        )
        return replace(
            self, support_number=number, method="boxes", confidence=confidence,
            reads=[*self.reads, read], problems=problems,
        ), choice


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    binarise(image).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


class _Stopwatch:
    """Wall and CPU seconds per phase; CPU includes Tesseract's (reaped children).

    CPU time is what "seconds per page on one core" means when other work
    shares the machine; wall time is what the caller waits.
    """

    def __init__(self, into: dict[str, float]) -> None:
        self._into = into
        self._phase = ""
        self._wall = self._cpu = 0.0

    @staticmethod
    def _cpu_now() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def start(self, phase: str) -> None:
        self._phase = phase
        self._wall, self._cpu = time.perf_counter(), self._cpu_now()

    def stop(self) -> None:
        wall = time.perf_counter() - self._wall
        cpu = self._cpu_now() - self._cpu
        self._into[self._phase] = self._into.get(self._phase, 0.0) + wall
        key = f"{self._phase}_cpu"
        self._into[key] = self._into.get(key, 0.0) + cpu


def read_fax(
    pages: list[Image.Image],
    *,
    settings: SupportNumberSettings | None = None,
    ticket_prefix: str = "T",
    full_text: bool = True,
    deadline: Deadline | None = None,
) -> FaxReading:
    """Read the support number and ticket number off page images.

    ``full_text=False`` skips full-page OCR unless the number needs it (the
    text of such a reading is then partial); the pipeline keeps the default.
    """
    cfg = settings or SupportNumberSettings()
    deadline = deadline or Deadline(FaxLimits().timeout_seconds)
    timings: dict[str, float] = {}
    clock = _Stopwatch(timings)
    clock.start("number")
    analysed, box_reads = _analyse(pages, ticket_prefix, deadline, layout_for(cfg),
                                   cfg.check == "luhn")
    clock.stop()

    number = decide_from_forms(analysed, cfg)
    if number.value is None and not number.problems:
        clock.start("number")
        from_text = decide_from_text(analysed, cfg, deadline)
        clock.stop()
        number = Verdict(from_text.value, number.reads + from_text.reads, from_text.problems)

    clock.start("text")
    text = _page_texts(analysed, full_text, deadline)
    clock.stop()

    earlier = box_reads + number.reads
    ticket = decide_ticket(analysed, ticket_prefix, earlier, deadline)
    images = [
        _png(p.levelled) if p.levelled is not None else _png(to_gray(img))
        for p, img in zip(analysed, pages, strict=True)
    ]
    accepted = number.value
    boxes = box_evidence(analysed, cfg) if accepted is None else None
    return FaxReading(
        support_number=accepted.number if accepted else None,
        ticket_number=ticket.value,
        method=accepted.method if accepted else None,
        confidence=accepted.confidence if accepted else 0.0,
        reads=[*earlier, *ticket.reads],
        text=text,
        page_count=len(pages),
        problems=[*number.problems, *ticket.problems],
        page_images=images,
        timings=timings,
        boxes=boxes,
        sender=sender_fax(analysed, pages, deadline),
    )


def _analyse(
    pages: list[Image.Image], ticket_prefix: str, deadline: Deadline, layout: DigitLayout,
    luhn: bool = True,
) -> tuple[list[AnalysedPage], tuple[MethodRead, ...]]:
    """Each page levelled, its form found, its QR codes and boxes read.

    Returns the pages, and the reads of the forms' 問合せ番号 boxes.
    """
    analysed: list[AnalysedPage] = []
    box_reads: list[MethodRead] = []
    for index, image in enumerate(pages, start=1):
        deadline.check(f"reading page {index}")
        gray, ink = remove_streaks(to_gray(image), ink_mask(image))
        page = AnalysedPage(number=index, blank=is_blank(ink), gray=gray)
        analysed.append(page)
        if page.blank:
            continue
        page.geometry = find_form(ink, px_per_mm(image))
        page.qr = read_qr(gray)
        if page.geometry is not None:
            page.zonal = read_digit_boxes(gray, page.geometry, deadline, layout, luhn=luhn)
            box = read_ticket_box(gray, page.geometry, ticket_prefix, index, deadline)
            if box is not None:
                box_reads.append(box)
        page.levelled = level(page, gray, ink)
        page.levelled.info["dpi"] = image.info.get("dpi", (0, 0))
    return analysed, tuple(box_reads)


def _page_texts(analysed: list[AnalysedPage], full_text: bool, deadline: Deadline) -> str:
    """The pages' OCR text, a form feed between pages; OCR made now unless ``full_text`` is off.

    Our form's page is read field by field (``form_text``: "label: value"
    lines, PP-OCR); any other page by full-page OCR.
    """
    texts: list[str] = []
    for page in analysed:
        if page.blank or page.levelled is None:
            texts.append("")
            continue
        if page.geometry is not None and page.gray is not None and page.ocr is None:
            texts.append(form_text(page.gray, page.geometry, deadline) if full_text else "")
            continue
        if full_text:
            page_text(page, deadline)
        texts.append(page.ocr.text if page.ocr else "")
    return "\n\f\n".join(texts).strip()


def read_fax_document(
    data: bytes,
    filename: str,
    limits: FaxLimits | None = None,
    *,
    settings: SupportNumberSettings | None = None,
    ticket_prefix: str = "T",
    full_text: bool = True,
) -> FaxReading:
    """Load a FAX (TIFF or PDF bytes) and read it, within ``limits``.

    Raises FaxDocumentError for input that is not a readable FAX; an
    unreadable support number is not an error (``support_number`` is None).
    """
    limits = limits or FaxLimits()
    deadline = Deadline(limits.timeout_seconds)
    timings: dict[str, float] = {}
    clock = _Stopwatch(timings)
    clock.start("load")
    pages = load_pages(data, filename, limits, deadline)
    clock.stop()
    reading = read_fax(
        pages,
        settings=settings,
        ticket_prefix=ticket_prefix,
        full_text=full_text,
        deadline=deadline,
    )
    reading.timings.update(timings)
    return reading
