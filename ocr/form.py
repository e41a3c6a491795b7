"""The vendor's FAX request form (FAXお問い合わせ用紙), and its geometry.

The form is an A4 PDF drawn with reportlab. Every position is given in
millimetres from the top-left corner of the page, because that is how the
reader sees a FAX image; the reader locates the four solid registration marks
in the corners and maps these same constants onto the image, so the layout
and the reader cannot drift apart.

The digit boxes follow the configured number format (``DigitLayout``, from
``[support_number] display_groups``); the reader is given the same layout.
A form printed for a known customer carries the support service number twice:
once in the digit boxes in a plain monospaced face (easy for OCR) and once in
a QR code, and its company, department, contact, address and 契約コード in
their cells (``ticketing.fax_forms.FormFill``). A blank form has empty boxes
for the customer to fill in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import segno
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from madoguchi.config import SupportNumberSettings
from madoguchi.ticketing.fax_forms import FormFill, form_fill

# Re-exported: the form's page and fonts are the desk's (readers, tests and benches use them).
from madoguchi.ticketing.pdf import DIGIT_FONT as DIGIT_FONT
from madoguchi.ticketing.pdf import JAPANESE_FONT as JAPANESE_FONT
from madoguchi.ticketing.pdf import PAGE_H_MM as PAGE_H_MM
from madoguchi.ticketing.pdf import PAGE_W_MM as PAGE_W_MM
from madoguchi.ticketing.pdf import register_fonts as register_fonts
from madoguchi.ticketing.support_number import parse_support_number
from madoguchi.ticketing.ticket_number import normalise as normalise_ticket_number
from madoguchi.ticketing.ticket_number import pattern as ticket_number_pattern

if TYPE_CHECKING:
    from madoguchi.ticketing.models import Contract
    from madoguchi.ticketing.products import Product


@dataclass(frozen=True)
class Rect:
    """A rectangle in millimetres, origin at the page's top-left corner."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def inset(self, d: float) -> Rect:
        return Rect(self.x0 + d, self.y0 + d, self.x1 - d, self.y1 - d)


# Registration marks: solid squares whose centres the reader finds.
MARK_SIZE_MM = 6.0
MARK_CENTERS_MM: tuple[tuple[float, float], ...] = (
    (14.0, 14.0),  # top left
    (196.0, 14.0),  # top right
    (14.0, 283.0),  # bottom left
    (196.0, 283.0),  # bottom right
)

# The support service number: one box per digit, in the groups of the
# configured format (``[support_number] display_groups``, 4-4-4 by default).
DIGIT_BOX_W_MM = 9.0
DIGIT_BOX_H_MM = 12.0
DIGIT_GROUP_GAP_MM = 6.0
DIGIT_ROW_X_MM = 20.0
DIGIT_ROW_Y_MM = 47.0
# The boxes end before the QR code; more digits make narrower boxes.
_DIGIT_ROW_MAX_X_MM = 152.0


@dataclass(frozen=True)
class DigitLayout:
    """The digit boxes of one number format: the form draws them, the reader reads them."""

    groups: tuple[int, ...]
    boxes: tuple[Rect, ...]

    @property
    def count(self) -> int:
        return len(self.boxes)

    @property
    def row(self) -> Rect:
        return Rect(self.boxes[0].x0, DIGIT_ROW_Y_MM, self.boxes[-1].x1,
                    DIGIT_ROW_Y_MM + DIGIT_BOX_H_MM)


def digit_layout(groups: Sequence[int]) -> DigitLayout:
    """The boxes for a number shown in ``groups`` (e.g. 4-4-4); ValueError if they cannot fit."""
    sizes = tuple(int(g) for g in groups)
    count = sum(sizes)
    if not sizes or min(sizes) < 1 or count > 30:
        raise ValueError(f"cannot draw digit boxes for the groups {list(sizes)}")
    gaps = (len(sizes) - 1) * DIGIT_GROUP_GAP_MM
    width = min(DIGIT_BOX_W_MM, (_DIGIT_ROW_MAX_X_MM - DIGIT_ROW_X_MM - gaps) / count)
    boxes: list[Rect] = []
    x = DIGIT_ROW_X_MM
    for size in sizes:
        for _ in range(size):
            boxes.append(Rect(x, DIGIT_ROW_Y_MM, x + width, DIGIT_ROW_Y_MM + DIGIT_BOX_H_MM))
            x += width
        x += DIGIT_GROUP_GAP_MM
    return DigitLayout(sizes, tuple(boxes))


def layout_for(settings: SupportNumberSettings) -> DigitLayout:
    """The digit boxes of the configured number format."""
    return digit_layout(settings.display_groups)


DEFAULT_LAYOUT = layout_for(SupportNumberSettings())
DIGIT_COUNT = DEFAULT_LAYOUT.count
DIGIT_BOXES_MM: tuple[Rect, ...] = DEFAULT_LAYOUT.boxes
DIGIT_ROW_MM = DEFAULT_LAYOUT.row

# The inquiry (ticket) number of a follow-up: one box, typed or pre-printed.
TICKET_BOX_MM = Rect(78.0, 64.0, 140.0, 74.0)

# The QR code, quiet zone included, sits at the top right under the mark.
QR_MODULE_MM = 1.1
QR_BORDER_MODULES = 2
QR_ORIGIN_MM = (160.0, 24.0)

# Where the customer's answers go (the value cells of the table).
_LABEL_X0, _LABEL_X1, _VALUE_X1 = 20.0, 55.0, 190.0
_TABLE_ROWS: tuple[tuple[str, str, float], ...] = (
    ("date", "ご記入日", 8.0),
    ("company", "会社名", 8.0),
    ("department", "部署名", 8.0),
    ("contact", "ご担当者名", 8.0),
    ("address", "ご住所", 8.0),
    ("phone", "電話番号", 8.0),
    ("fax", "FAX番号", 8.0),
    ("email", "メールアドレス", 8.0),
    ("contract_code", "契約コード", 8.0),
    ("product", "製品名", 8.0),
    ("reply", "ご希望の回答方法", 8.0),
    ("environment", "ご利用環境", 12.0),
)
# The tick boxes of ご希望の回答方法, in the order printed.
REPLY_METHODS: tuple[str, ...] = ("FAX", "メール", "電話")
_TABLE_Y0 = 80.0


def _table_cells() -> dict[str, tuple[Rect, Rect, str]]:
    cells: dict[str, tuple[Rect, Rect, str]] = {}
    y = _TABLE_Y0
    for key, label, height in _TABLE_ROWS:
        cells[key] = (
            Rect(_LABEL_X0, y, _LABEL_X1, y + height),
            Rect(_LABEL_X1, y, _VALUE_X1, y + height),
            label,
        )
        y += height
    return cells


_CELLS = _table_cells()
_QUESTION_LABEL_Y = _TABLE_Y0 + sum(h for _, _, h in _TABLE_ROWS)
QUESTION_BOX_MM = Rect(_LABEL_X0, _QUESTION_LABEL_Y + 8.0, _VALUE_X1, 262.0)
FIELD_RECTS_MM: dict[str, Rect] = {
    **{key: value for key, (_, value, _) in _CELLS.items()},
    "question": QUESTION_BOX_MM,
    "ticket": TICKET_BOX_MM,
}

# The fields in the order the form shows them, with their printed labels (the
# page text is laid out as "label: value" lines by ``form_text.py``).
FIELD_LABELS: tuple[tuple[str, str], ...] = (
    *((key, label) for key, label, _ in _TABLE_ROWS),
    ("question", "お問い合わせ内容"),
)

FORM_TITLE = "FAXお問い合わせ用紙"
FORM_ID = "MDG-FAX-1"


def to_pdf(x_mm: float, y_mm: float) -> tuple[float, float]:
    """Top-left millimetres to reportlab points (origin bottom-left)."""
    return x_mm * mm, (PAGE_H_MM - y_mm) * mm


def qr_payload(support_digits: str, ticket_number: str | None = None) -> str:
    """What the QR code says; upper case only, so it stays in QR alphanumeric mode."""
    payload = f"SSN:{support_digits}"
    if ticket_number:
        payload += f" TKT:{ticket_number}"
    return payload


QR_PAYLOAD_RE = re.compile(
    rf"^SSN:(?P<digits>\d{{6,30}})(?: TKT:(?P<ticket>{ticket_number_pattern()}))?$"
)


def _rect(c: Canvas, r: Rect, *, fill: bool = False, width: float = 0.8) -> None:
    x, y = to_pdf(r.x0, r.y1)
    c.setLineWidth(width)
    c.rect(x, y, r.width * mm, r.height * mm, stroke=1, fill=1 if fill else 0)


def _text(
    c: Canvas, x_mm: float, y_mm: float, text: str, size: float, font: str = JAPANESE_FONT
) -> None:
    c.setFont(font, size)
    c.drawString(*to_pdf(x_mm, y_mm), text)


def _draw_qr(c: Canvas, payload: str) -> None:
    qr = segno.make_qr(payload, error="m", boost_error=False)
    x0, y0 = QR_ORIGIN_MM
    for row, line in enumerate(qr.matrix_iter(scale=1, border=QR_BORDER_MODULES)):
        col = 0
        cells = list(line)
        while col < len(cells):
            if not cells[col]:
                col += 1
                continue
            start = col
            while col < len(cells) and cells[col]:
                col += 1
            # One rectangle per run of dark modules keeps the PDF small.
            r = Rect(
                x0 + start * QR_MODULE_MM,
                y0 + row * QR_MODULE_MM,
                x0 + col * QR_MODULE_MM,
                y0 + (row + 1) * QR_MODULE_MM,
            )
            x, y = to_pdf(r.x0, r.y1)
            c.rect(x, y, r.width * mm, r.height * mm, stroke=0, fill=1)


def _draw_boxes(c: Canvas, layout: DigitLayout, printed_digits: str | None) -> None:
    for box in layout.boxes:
        _rect(c, box, width=1.0)
    end = 0
    for size in layout.groups[:-1]:
        end += size
        left = layout.boxes[end - 1].x1
        mid_y = DIGIT_ROW_Y_MM + DIGIT_BOX_H_MM / 2
        c.setLineWidth(1.2)
        c.line(*to_pdf(left + 1.5, mid_y), *to_pdf(left + DIGIT_GROUP_GAP_MM - 1.5, mid_y))
    if printed_digits:
        c.setFont(DIGIT_FONT, 22 if layout.boxes[0].width >= 8 else 16)
        for box, digit in zip(layout.boxes, printed_digits, strict=False):
            cx = (box.x0 + box.x1) / 2
            x, y = to_pdf(cx, box.y1 - 3.2)
            c.drawCentredString(x, y, digit)


def _draw_fill(c: Canvas, fill: FormFill | None) -> None:
    """The contract's details in their cells, and the reply method's tick boxes."""
    for key, value in (fill.values() if fill is not None else {}).items():
        cell = _CELLS[key][1]
        _text(c, cell.x0 + 3, cell.y1 - 2.4, value, 10)
    reply = _CELLS["reply"][1]
    x = reply.x0 + 4
    for method in REPLY_METHODS:
        _rect(c, Rect(x, reply.y0 + 2.2, x + 3.6, reply.y0 + 5.8), width=0.6)
        _text(c, x + 5, reply.y0 + 5.6, method, 9)
        x += 28


def draw_form(
    c: Canvas,
    *,
    printed_digits: str | None,
    qr_digits: str | None,
    ticket_number: str | None = None,
    vendor_name: str = "サポートセンター",
    vendor_fax: str = "",
    hours: str = "受付時間 平日 9:00〜12:00、13:00〜17:30（土日祝・年末年始を除く）",
    layout: DigitLayout = DEFAULT_LAYOUT,
    fill: FormFill | None = None,
) -> None:
    """Draw one form page on ``c`` without validating anything.

    ``hours`` is the hours line as printed (the desk passes its product's
    calendar's, ``ticketing.products.FaxFormDetails``); ``layout`` the digit
    boxes of the number format; ``fill`` a known contract's details.

    ``write_form`` is the checked entry point; this one also lets the test
    corpus print forms that must be refused (a wrong check digit, a QR code
    that disagrees with the printed digits).
    """
    register_fonts()
    c.setFillGray(0)
    c.setStrokeGray(0)
    half = MARK_SIZE_MM / 2
    for cx, cy in MARK_CENTERS_MM:
        _rect(c, Rect(cx - half, cy - half, cx + half, cy + half), fill=True, width=0)

    _text(c, 20, 26, FORM_TITLE, 18)
    dest = f"{vendor_name} 宛"
    if vendor_fax:
        dest += f"　FAX: {vendor_fax}"
    _text(c, 20, 31.5, dest, 9)
    _text(c, 20, 35.5, hours, 7.5)
    how = f"サービス証書に記載の{layout.count}桁の番号を、枠内に1桁ずつご記入ください。"
    _text(c, 20, 40, how, 8)
    _text(c, 20, 45, "サポートサービス番号（必須）", 10)

    _draw_boxes(c, layout, printed_digits)
    if qr_digits:
        _draw_qr(c, qr_payload(qr_digits, ticket_number))
        _text(c, 161, 57, "（機械読取用）", 6)

    _text(c, 20, 70.5, "問合せ番号", 10)
    _text(c, 20, 75, "（2回目以降のお問い合わせのみ）", 6.5)
    _rect(c, TICKET_BOX_MM, width=1.0)
    if ticket_number:
        c.setFont(DIGIT_FONT, 15)
        c.drawString(*to_pdf(TICKET_BOX_MM.x0 + 3, TICKET_BOX_MM.y1 - 2.8), ticket_number)
    _text(c, 143, 70.5, "弊社からの回答に記載の番号", 7)

    for label_rect, value_rect, label in _CELLS.values():
        _rect(c, label_rect, width=0.6)
        _rect(c, value_rect, width=0.6)
        _text(c, label_rect.x0 + 2, label_rect.y0 + 6, label, 9)
    date_cell = _CELLS["date"][1]
    _text(c, date_cell.x0 + 30, date_cell.y0 + 6, "年　　　月　　　日", 9)
    env_cell = _CELLS["environment"][1]
    _text(c, env_cell.x0 + 2, env_cell.y0 + 4, "OS / Webサーバ / バージョン / ユーザー数", 6.5)
    _draw_fill(c, fill)

    _text(c, _LABEL_X0, _QUESTION_LABEL_Y + 6, "お問い合わせ内容", 10)
    _rect(c, QUESTION_BOX_MM, width=0.6)

    _text(c, 20, 268, "※ご契約の窓口担当者様以外からのお問い合わせにはお答えいたしかねます。", 7)
    _text(
        c,
        20,
        272.5,
        "※FAXは24時間受け付けます。回答は受付時間内に行います。",
        7,
    )
    _text(c, 100, 285, FORM_ID, 6, DIGIT_FONT)


def write_form(
    target: str | os.PathLike[str] | BinaryIO,
    support_number: str | None,
    ticket_number: str | None = None,
    *,
    vendor_name: str = "サポートセンター",
    vendor_fax: str = "",
    hours: str | None = None,
    settings: SupportNumberSettings | None = None,
    fill: FormFill | None = None,
) -> None:
    """Write the FAX request form as a one-page A4 PDF.

    With ``support_number`` the number is pre-printed in the boxes and in a
    QR code; it must pass the check digit (a form must never carry a number
    the desk would refuse). ``ticket_number`` pre-fills 問合せ番号 for a
    follow-up form. ``vendor_name``, ``vendor_fax`` and ``hours`` are the
    product's (``ticketing.products.FaxFormDetails``); ``fill`` a known
    contract's details (``ticketing.fax_forms.form_fill``). The boxes follow
    the configured number format. Raises ValueError on a bad number.
    """
    cfg = settings or SupportNumberSettings()
    layout = layout_for(cfg)
    digits: str | None = None
    if support_number is not None:
        parsed = parse_support_number(support_number, cfg)
        if parsed is None:
            raise ValueError(f"not a valid support service number: {support_number!r}")
        digits = parsed.digits
        if len(digits) != layout.count:
            raise ValueError(f"{support_number!r} has {len(digits)} digits, the form's boxes "
                             f"{layout.count} ([support_number] display_groups)")
    if ticket_number is not None and normalise_ticket_number(ticket_number) != ticket_number:
        raise ValueError(f"not a ticket number: {ticket_number!r}")

    out = os.fspath(target) if isinstance(target, str | os.PathLike) else target
    register_fonts()
    # Without an initial font reportlab lists Helvetica, unembedded, in every page.
    c = Canvas(out, pagesize=(PAGE_W_MM * mm, PAGE_H_MM * mm), initialFontName=JAPANESE_FONT)
    c.setTitle(FORM_TITLE)
    c.setAuthor(vendor_name)
    draw_form(
        c,
        printed_digits=digits,
        qr_digits=digits,
        ticket_number=ticket_number,
        vendor_name=vendor_name,
        vendor_fax=vendor_fax,
        layout=layout,
        fill=fill,
        **({"hours": hours} if hours else {}),
    )
    c.showPage()
    c.save()


def write_contract_form(
    target: str | os.PathLike[str] | BinaryIO,
    contract: Contract,
    product: Product,
    settings: SupportNumberSettings,
    ticket_number: str | None = None,
) -> None:
    """The form pre-filled for ``contract`` (customer and contacts loaded): its number, its
    customer's company, department, contact, address and contract code, its product's
    vendor, FAX number and hours. What ``madoguchi form --contract`` and the signed link serve.
    """
    details = product.fax_form
    if details is None:
        raise ValueError(f"the product {product.name!r} has no FAX form details")
    write_form(target, contract.support_number, ticket_number, vendor_name=details.vendor_name,
               vendor_fax=details.fax_number, hours=details.hours, settings=settings,
               fill=form_fill(contract))
