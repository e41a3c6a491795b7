"""The decisions: which support number, and which 問合せ番号, a FAX carries.

Nothing is guessed. A number is accepted only when its check digit holds and,
when a code and printed digits were both read, when they agree; a form whose
boxes hold something unreadable is not second-guessed by full-page OCR.
Each decision returns a ``Verdict``: the value accepted (or None), every
read it made, for the record, and every reason for sending the FAX to
triage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from madoguchi.config import SupportNumberSettings
from madoguchi.ocr._exec import tesseract
from madoguchi.ocr.form import layout_for
from madoguchi.ocr.fulltext import (
    AnalysedPage,
    TextSearch,
    cleaned,
    digits_confidence,
    is_form_page,
    reread,
    search_page,
)
from madoguchi.ocr.pages import Deadline
from madoguchi.ocr.second_look import second_look
from madoguchi.ocr.ticket_text import find_ticket_number
from madoguchi.ocr.verdict import Accepted, MethodRead, Verdict
from madoguchi.ocr.zonal import BoxStatus, TwoReads, ZonalRead
from madoguchi.ticketing.rules.fax_number import (
    BOXES_UNREAD,
    Reading,
    clear_reading,
    valid_readings,
)
from madoguchi.ticketing.support_number import SupportNumber, parse_support_number

# Lowest character confidence of the unconstrained zonal read to trust it.
ZONAL_MIN_CONFIDENCE = 0.45
# A full-page read whose second read is illegible needs this confidence.
FULLPAGE_MIN_CONFIDENCE = 0.30


# --- our forms ------------------------------------------------------------------


@dataclass
class _PagePart:
    """What one method made of one page: a number or none, its reads, its problems."""

    number: SupportNumber | None = None
    reads: list[MethodRead] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def decide_from_forms(pages: list[AnalysedPage], cfg: SupportNumberSettings) -> Verdict[Accepted]:
    """The number from our forms' QR codes and digit boxes.

    A verdict with problems when a form holds a number that cannot be
    trusted: then the caller must not look further (no guessing from text).
    Neither a value nor problems: no page is a form with a number on it.
    """
    accepted: list[Accepted] = []
    reads: list[MethodRead] = []
    problems: list[str] = []
    for page in pages:
        qr = _qr_codes(page, cfg)
        reads += qr.reads
        problems += qr.problems
        zonal = page.zonal
        zonal_number: SupportNumber | None = None
        if zonal is not None and zonal.status is not BoxStatus.EMPTY:
            boxes = _digit_boxes(page.number, zonal, qr.number, cfg)
            reads += boxes.reads
            problems += boxes.problems
            if boxes.problems:
                continue
            zonal_number = boxes.number
        if qr.number is not None and zonal_number is not None:
            accepted.append(Accepted(qr.number, "qr+zonal", 1.0))
        elif qr.number is not None:
            accepted.append(Accepted(qr.number, "qr", 1.0))
        elif zonal_number is not None:
            accepted.append(Accepted(zonal_number, "zonal", zonal.confidence if zonal else 0.0))

    if problems:
        return Verdict(None, tuple(reads), tuple(problems))
    distinct = {a.number.digits for a in accepted}
    if len(distinct) > 1:
        problem = f"pages carry different support numbers: {', '.join(sorted(distinct))}"
        return Verdict(None, tuple(reads), (problem,))
    return Verdict(accepted[0] if accepted else None, tuple(reads))


def _qr_codes(page: AnalysedPage, cfg: SupportNumberSettings) -> _PagePart:
    """The page's QR codes: our form's number when they carry one, and agree."""
    part = _PagePart()
    for qr in page.qr:
        if qr.digits is None:
            part.reads.append(
                MethodRead(
                    "qr", "support_number", page.number, qr.raw, None, 1.0, "not our form's code"
                )
            )
            continue
        parsed = parse_support_number(qr.digits, cfg)
        part.reads.append(
            MethodRead(
                "qr",
                "support_number",
                page.number,
                qr.raw,
                parsed.digits if parsed else None,
                1.0,
                "" if parsed else "check digit fails",
            )
        )
        if parsed is None:
            part.problems.append(f"page {page.number}: the QR code's number fails its check digit")
        elif part.number is not None and part.number != parsed:
            part.problems.append(f"page {page.number}: two QR codes with different numbers")
        else:
            part.number = parsed
        if qr.ticket:
            part.reads.append(
                MethodRead("qr", "ticket_number", page.number, qr.raw, qr.ticket, 1.0)
            )
    return part


def _digit_boxes(
    page: int, zonal: ZonalRead, qr_number: SupportNumber | None, cfg: SupportNumberSettings
) -> _PagePart:
    """The filled-in digit boxes: a trusted number, or problems that stop the page.

    Tesseract's read of the boxes is trusted when its check digit holds, it
    is confident, and PP-OCR's likeliest valid reading of the boxes is the
    same number and clear (``clear_reading``: a margin over every other
    valid reading, every digit seen). Anything else is left to ``choose_number`` with the
    registered numbers (the pipeline's step): the problem says so.
    """
    read = zonal.status is BoxStatus.READ
    parsed = parse_support_number(zonal.digits, cfg) if read else None
    readings = box_readings(zonal, cfg)
    likeliest = readings[0].digits if readings else None
    clear = clear_reading(readings, zonal.probabilities) if readings else None
    trusted = (
        parsed is not None
        and zonal.confidence >= ZONAL_MIN_CONFIDENCE
        and (not zonal.probabilities or clear == parsed.digits)
    )
    note = zonal.note
    if read and parsed is None:
        note = "check digit fails"
    elif parsed is not None and zonal.confidence < ZONAL_MIN_CONFIDENCE:
        note = f"confidence below {ZONAL_MIN_CONFIDENCE:.2f}"
    elif parsed is not None and not trusted:
        note = f"PP-OCR's likeliest valid reading {likeliest} is not clear enough to confirm it"
    part = _PagePart(parsed if trusted else None)
    part.reads.append(
        MethodRead(
            "zonal",
            "support_number",
            page,
            zonal.digits,
            parsed.digits if trusted and parsed else None,
            zonal.confidence,
            note,
        )
    )
    if zonal.probabilities:
        weakest = min(max(row) for row in zonal.probabilities)
        part.reads.append(
            MethodRead(
                "zonal",
                "support_number",
                page,
                zonal.box_digits,
                parsed.digits if trusted and parsed else None,
                weakest,
                f"PP-OCR box by box; likeliest valid reading {likeliest or 'none'}",
            )
        )
    confident_digits = read and zonal.confidence >= ZONAL_MIN_CONFIDENCE
    # A Tesseract read whose check digit fails is known wrong: it stands against the QR code
    # only when PP-OCR's likeliest valid reading of the same boxes does not agree with it.
    misread = parsed is None and likeliest is not None and qr_number is not None \
        and likeliest == qr_number.digits
    if qr_number is not None and confident_digits and zonal.digits != qr_number.digits \
            and not misread:
        part.problems.append(
            f"page {page}: the QR code says {qr_number} but the boxes read {zonal.digits}"
        )
    elif qr_number is None and part.number is None:
        part.problems.append(f"page {page}: {BOXES_UNREAD} ({note})")
    return part


def box_readings(zonal: ZonalRead, cfg: SupportNumberSettings) -> list[Reading]:
    """The valid readings of the boxes by PP-OCR's probabilities, best first."""
    if not zonal.probabilities or len(zonal.probabilities) != layout_for(cfg).count:
        return []
    return valid_readings(zonal.probabilities, luhn=cfg.check == "luhn")


@dataclass(frozen=True)
class BoxEvidence:
    """A form's filled boxes that could not be read alone: for ``choose_number``."""

    page: int
    probabilities: tuple[tuple[float, ...], ...]
    readings: tuple[Reading, ...]


def box_evidence(pages: list[AnalysedPage], cfg: SupportNumberSettings) -> BoxEvidence | None:
    """The first form page whose boxes hold digits: their probabilities and valid readings."""
    for page in pages:
        zonal = page.zonal
        if zonal is None or zonal.status not in (BoxStatus.READ, BoxStatus.UNCLEAR):
            continue
        readings = box_readings(zonal, cfg)
        if readings:
            return BoxEvidence(page.number, zonal.probabilities, tuple(readings))
    return None


# --- the page text ----------------------------------------------------------------


class Agreement(Enum):
    """What the second read of a number found in the page text says about it."""

    ACCEPT = "accept"
    DIFFERS = "differs"  # it read another number
    UNCERTAIN = "uncertain"  # it could not confirm, and the first read is not enough alone


@dataclass(frozen=True)
class _Judged:
    agreement: Agreement
    confidence: float
    note: str


@dataclass(frozen=True)
class FirstLook:
    """The first look's verdict, and every valid number its reads saw (for the second look)."""

    verdict: Verdict[Accepted]
    seen_valid: frozenset[str]


def decide_from_text(
    pages: list[AnalysedPage], cfg: SupportNumberSettings, deadline: Deadline
) -> Verdict[Accepted]:
    """The number from the page text: a first look, and when it fails, a second.

    The first look is the email path's search over full-page OCR (see
    ``first_look``). Full-page Japanese OCR misreads digits whose thin
    strokes a standard-resolution FAX broke (3 as 8 or 9, 4 as 1), or a
    label, or a separator, so the first look finds nothing, or only a number
    whose check digit fails, or a number its second read does not confirm.
    Then ``second_look`` reads every place a number may stand once more,
    in ten differently prepared images, and accepts a number only on a clear
    vote. Either way nothing is guessed: the check digit must hold, and a
    FAX whose reads saw two different valid numbers goes to triage.

    A form page (``is_form_page``) is not searched at all: its number is
    the one in its boxes, and anything else printed on it (the 記入例
    example, a serial, a phone number) is not the customer's.
    """
    forms = [p.number for p in pages if is_form_page(p, deadline)]
    pages = [p for p in pages if p.number not in forms]
    if not any(not p.blank for p in pages) and forms:
        # Never a number from elsewhere on a form: its example, a serial, a phone.
        problem = "the form's support number boxes are empty" if len(forms) == 1 else (
            f"the forms' support number boxes are empty (pages {', '.join(map(str, forms))})"
        )
        return Verdict(None, (), (problem,))
    first = first_look(pages, cfg, deadline)
    if first.verdict.value is not None:
        return first.verdict
    second = second_look(pages, cfg, deadline, first.seen_valid)
    reads = first.verdict.reads + second.reads
    if second.value is not None:
        return Verdict(second.value, reads)
    return Verdict(None, reads, first.verdict.problems + second.problems)


def first_look(
    pages: list[AnalysedPage], cfg: SupportNumberSettings, deadline: Deadline
) -> FirstLook:
    """Full-page OCR, then the email path's search: top of the page or after a label.

    The Japanese pass is the page text anyway. When it finds no number at
    all, an English-only pass (digits read better without the kanji model)
    has a go. The first page with a number decides: a number found is read
    again from its own spot on the page and accepted when that read agrees
    (or is illegible and the first was confident). Every valid number any
    read saw is returned in ``seen_valid``, for the second look to respect.
    """
    reads: list[MethodRead] = []
    seen_valid: set[str] = set()

    def verdict(value: Accepted | None, *problems: str) -> FirstLook:
        return FirstLook(Verdict(value, tuple(reads), problems), frozenset(seen_valid))

    for page in pages:
        if page.blank or page.levelled is None:
            continue
        search = search_page(page, cfg, deadline)
        found = search.found
        for bad in found.invalid:
            reads.append(
                MethodRead(
                    "fullpage",
                    "support_number",
                    page.number,
                    bad,
                    None,
                    0.0,
                    f"{search.model}: check digit fails",
                )
            )
        if found.number is None:
            if found.invalid:
                return verdict(
                    None, f"page {page.number}: {', '.join(found.invalid)} fails its check digit"
                )
            continue
        digits = found.number.digits
        again = reread(cleaned(page), search.source, digits, tesseract.DIGITS + "-", deadline)
        seen = "".join(ch for ch in again.constrained if ch.isdigit()) if again else ""
        seen_valid.add(digits)
        if parse_support_number(seen, cfg) is not None:
            seen_valid.add(seen)
        judged = _judge(found, again, seen, search.model)
        accepted = judged.agreement is Agreement.ACCEPT
        reads.append(
            MethodRead(
                "fullpage",
                "support_number",
                page.number,
                digits,
                digits if accepted else None,
                judged.confidence,
                judged.note,
            )
        )
        if accepted:
            return verdict(Accepted(found.number, "fullpage", judged.confidence))
        if judged.agreement is Agreement.DIFFERS:
            return verdict(
                None, f"page {page.number}: read {digits} once and {seen} the second time"
            )
        return verdict(None, f"page {page.number}: the number read is too uncertain")
    return verdict(None, "no support service number found")


def _judge(found: TextSearch, again: TwoReads | None, seen: str, model: str) -> _Judged:
    """What the second read (``seen``, its digits) makes of the number the search found."""
    assert found.number is not None
    if seen == found.number.digits:
        note = f"{model}, confirmed by a second read"
        confidence = min(found.confidence, again.confidence) if again else 0.0
        return _Judged(Agreement.ACCEPT, confidence, note)
    if len(seen) >= 10:
        return _Judged(Agreement.DIFFERS, found.confidence, f"{model}; a second read saw {seen}")
    if found.confidence >= FULLPAGE_MIN_CONFIDENCE:
        return _Judged(Agreement.ACCEPT, found.confidence, f"{model}, second read illegible")
    note = f"{model}: confidence below {FULLPAGE_MIN_CONFIDENCE}"
    return _Judged(Agreement.UNCERTAIN, found.confidence, note)


# --- the 問合せ番号 ---------------------------------------------------------------


def decide_ticket(
    pages: list[AnalysedPage],
    prefix: str,
    earlier: Sequence[MethodRead],
    deadline: Deadline,
) -> Verdict[str]:
    """The 問合せ番号, which has no check digit: every read that found one must agree.

    A wrong ticket number would thread a customer's FAX into someone else's
    inquiry, so reads that disagree give no ticket (the FAX opens a new
    ticket, staff can merge) rather than a pick. One found in the page text
    counts only when a second read of the same spot agrees. ``earlier``
    are the reads made so far (the form's box, the QR code); the verdict's
    reads are the page-text ones this makes.
    """
    reads: list[MethodRead] = []
    for page in pages:
        if page.ocr is None:
            continue
        found = find_ticket_number(page.ocr.text, prefix)
        if not found:
            continue
        digits = "".join(ch for ch in found if ch.isdigit())
        # The second read covers the digits only (the prefix is no digit).
        again = reread(cleaned(page), page.ocr, digits, tesseract.DIGITS + "-", deadline)
        seen = "".join(ch for ch in again.constrained if ch.isdigit()) if again else None
        confirmed = seen == digits
        reads.append(
            MethodRead(
                "fullpage",
                "ticket_number",
                page.number,
                found,
                found if confirmed else None,
                digits_confidence(page.ocr, digits),
                "confirmed by a second read" if confirmed else f"a second read saw {seen}",
            )
        )
    seen_values = {r.value for r in (*earlier, *reads) if r.field == "ticket_number" and r.value}
    if len(seen_values) > 1:
        problem = f"問合せ番号 reads disagree: {', '.join(sorted(seen_values))}"
        return Verdict(None, tuple(reads), (problem,))
    return Verdict(seen_values.pop() if seen_values else None, tuple(reads))
