"""A seeded corpus of FAX documents with known answers, degraded as real FAXes are.

Each item is one FAX document (TIFF Class F G3 1-D, G3 2-D, G4, or a
gateway's PDF) at standard (204×98 dpi) or fine (204×196 dpi) resolution,
with the support number and ticket number a perfect reader would return.

Pages are drawn as PDF with reportlab (our form, or a free-form letter),
rendered at 300 dpi by poppler, then put through what a FAX does to paper:
the sending machine's header line, skew of up to ±3°, scaling, sampling at
FAX resolution, noise before the 1-bit threshold, specks, the odd vertical
streak from dirty scanner glass, and blank trailing pages.

Same arguments, same files: every random choice comes from one seeded RNG
per item.
"""

from __future__ import annotations

import io
import math
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from bench import handwriting
from madoguchi.ocr import form
from madoguchi.ocr._exec import poppler
from madoguchi.ticketing.support_number import luhn_check_digit

KINDS = (
    "form_printed",  # pre-printed number: QR code and digits in the boxes
    "form_typed",  # blank form, the customer typed the digits into the boxes in another font
    "form_handwritten",  # blank form, the digits written into the boxes by hand
    "freeform",  # a letter on plain paper, number at the top or after its label
    "followup",  # a form or letter that quotes 問合せ番号 T-YYYY-NNNNNN
    "neg_missing",  # no number anywhere
    "neg_smudged",  # a blot over at least one digit box
    "neg_checkdigit",  # a well-formed number whose check digit is wrong
)
FORM_KINDS = frozenset({"form_printed", "form_typed", "form_handwritten"})
RESOLUTIONS = {"fine": 196.0, "standard": 98.0}
CONTAINERS = ("g3-1d", "g3-2d", "g4", "pdf")
FAX_X_DPI = 204.0
FAX_WIDTH_PX = 1728
_RENDER_DPI = 300


@dataclass(frozen=True)
class CorpusItem:
    path: Path
    kind: str
    resolution: str  # "fine" | "standard"
    container: str  # g3-1d | g3-2d | g4 | pdf
    expected_number: str | None  # digits a correct reader accepts; None: must not accept any
    expected_ticket: str | None
    layout: str  # "form" | "free"
    pages: int
    seed: int
    style: str = ""  # how the number was put on the page: printed, a font, a writer's style
    sender_fax: str = ""  # the sending machine's own number, in its header line
    inquiry: str = ""  # the inquiry's text as typed on the page (for the text's recall)


    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


# --- fonts -----------------------------------------------------------------

_FONT_FILES = {
    "IPAGothic": "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
    "IPAPGothic": "/usr/share/fonts/opentype/ipafont-gothic/ipagp.ttf",
    "IPAMincho": "/usr/share/fonts/opentype/ipafont-mincho/ipam.ttf",
    "IPAPMincho": "/usr/share/fonts/opentype/ipafont-mincho/ipamp.ttf",
    "LiberationSerif": "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "LiberationSans": "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "DejaVuSans": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "DejaVuSerif": "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
}
JAPANESE_FONTS = ("IPAGothic", "IPAPGothic", "IPAMincho", "IPAPMincho")
# What customers type digits in (the form's own OCR face is not among them).
DIGIT_FONTS = (*JAPANESE_FONTS, "LiberationSerif", "LiberationSans", "DejaVuSans", "DejaVuSerif")
# More folders to find the font files in, by file name (os.pathsep between
# them), for a machine without them installed system-wide, e.g. the files
# of Debian's fonts-liberation unpacked somewhere.
FONT_DIRS_ENV = "FAX_CORPUS_FONT_DIRS"


def _font_path(name: str) -> Path | None:
    """Where the font file is on this machine, or None."""
    path = Path(_FONT_FILES[name])
    if path.exists():
        return path
    for folder in filter(None, os.environ.get(FONT_DIRS_ENV, "").split(os.pathsep)):
        candidate = Path(folder) / path.name
        if candidate.exists():
            return candidate
    return None


def missing_fonts() -> list[str]:
    """Fonts of the corpus this machine lacks.

    A missing font is left out of the random choices, which then pick other
    fonts and shift every later choice: the corpus differs from one made
    where all fonts are present, and so do the figures measured on it.
    """
    return [name for name in _FONT_FILES if _font_path(name) is None]


def _register_fonts() -> None:
    form.register_fonts()
    registered = pdfmetrics.getRegisteredFontNames()
    for name in _FONT_FILES:
        path = _font_path(name)
        if name not in registered and path is not None:
            pdfmetrics.registerFont(TTFont(name, str(path)))


def _available(fonts: Sequence[str]) -> list[str]:
    return [f for f in fonts if _font_path(f) is not None]


# --- realistic content -----------------------------------------------------

_COMPANY_HEADS = ("株式会社", "有限会社", "合同会社")
_COMPANY_NAMES = (
    "山田製作所",
    "東都物産",
    "みなと精機",
    "北斗システム",
    "さくら商事",
    "青葉食品",
    "中央ロジスティクス",
    "日本橋印刷",
    "富士見建設",
    "光陽電機",
    "大和ソリューションズ",
    "瀬戸内海運",
    "緑町メディカル",
    "朝日テクノ",
    "丸の内コンサルティング",
    "若葉会計事務所",
)
_DEPARTMENTS = (
    "情報システム部",
    "総務部",
    "経営企画室",
    "営業推進課",
    "IT推進グループ",
    "管理本部 総務課",
    "業務改革室",
    "システム管理課",
)
_FAMILY = (
    "佐藤",
    "鈴木",
    "高橋",
    "田中",
    "伊藤",
    "渡辺",
    "山本",
    "中村",
    "小林",
    "加藤",
    "吉田",
    "山口",
    "松本",
    "井上",
    "木村",
    "清水",
)
_GIVEN = (
    "一郎",
    "花子",
    "健太",
    "美咲",
    "大輔",
    "由美",
    "翔太",
    "恵子",
    "誠",
    "陽子",
    "拓也",
    "直美",
)
_PRODUCTS = (
    "クラウドCRM スタンダード",
    "クラウドCRM エンタープライズ",
    "グループウェア Pro",
    "グループウェア ライト",
    "ワークフロー オプション",
)
_OS = (
    "Windows Server 2019",
    "Windows Server 2022",
    "Red Hat Enterprise Linux 9",
    "Ubuntu 22.04 LTS",
    "クラウド版（サーバなし）",
)
_WEB = ("IIS 10", "Apache 2.4", "nginx 1.24", "—")
_QUESTIONS = (
    "ログイン画面で正しいパスワードを入力してもエラーが表示され、ログインできません。",
    "先週のバージョンアップ以降、スケジュール画面の表示に時間がかかるようになりました。",
    "ユーザーを追加しようとすると「ライセンス数の上限です」と表示されます。",
    "CSVで取引先データを取り込むと、住所の一部が文字化けします。",
    "ワークフローの承認メールが届かない利用者がいます。設定の確認方法を教えてください。",
    "来月からユーザー数が増えるため、ライセンスの追加手続きについて教えてください。",
    "バックアップからの復元手順を確認したいので、資料をお送りいただけますでしょうか。",
    "掲示板に添付したファイルがダウンロードできないとの問い合わせが社内からありました。",
    "管理画面のアクセス権限設定を変更したところ、一部の部署が閲覧できなくなりました。",
    "サーバの移設を予定しています。移行時の注意点をご教示ください。",
)
_CLOSINGS = (
    "お手数をおかけしますが、よろしくお願いいたします。",
    "ご回答をお待ちしております。",
    "以上、よろしくお願いいたします。",
)


@dataclass(frozen=True)
class _Customer:
    company: str
    department: str
    contact: str
    phone: str
    fax: str
    email: str
    product: str
    environment: str
    date: str
    questions: tuple[str, ...]


def _phone(rng: random.Random) -> str:
    area = rng.choice(("03", "06", "045", "052", "092", "011"))
    rest = 10 - len(area)
    mid = rest // 2
    first = "".join(rng.choice("0123456789") for _ in range(mid))
    last = "".join(rng.choice("0123456789") for _ in range(rest - mid))
    return f"{area}-{first}-{last}"


def _customer(rng: random.Random) -> _Customer:
    name = rng.choice(_COMPANY_NAMES)
    head = rng.choice(_COMPANY_HEADS)
    company = f"{head}{name}" if rng.random() < 0.6 else f"{name}{head}"
    family, given = rng.choice(_FAMILY), rng.choice(_GIVEN)
    user = rng.choice(("yamada", "info", "it-support", "soumu", "t.sato", "admin"))
    domain = rng.choice(("example.co.jp", "example.jp", "example.com"))
    env = (
        f"{rng.choice(_OS)} / {rng.choice(_WEB)} / Ver.{rng.randint(4, 7)}.{rng.randint(0, 9)} / "
        f"{rng.choice((25, 50, 120, 300, 1000))}ユーザー"
    )
    return _Customer(
        company=company,
        department=rng.choice(_DEPARTMENTS),
        contact=f"{family} {given}",
        phone=_phone(rng),
        fax=_phone(rng),
        email=f"{user}@{domain}",
        product=rng.choice(_PRODUCTS),
        environment=env,
        date=f"2026年{rng.randint(1, 12)}月{rng.randint(1, 28)}日",
        questions=tuple(rng.sample(_QUESTIONS, rng.randint(2, 4))),
    )


def random_number(rng: random.Random, *, valid: bool = True) -> str:
    """Twelve digits; with ``valid`` False the check digit is wrong."""
    body = str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(10))
    check = luhn_check_digit(body)
    if not valid:
        check = rng.choice([d for d in "0123456789" if d != check])
    return body + check


def grouped(digits: str) -> str:
    return f"{digits[:4]}-{digits[4:8]}-{digits[8:]}"


def random_ticket(rng: random.Random) -> str:
    return f"T-{rng.choice((2025, 2026))}-{rng.randint(1, 999999):06d}"


# --- pages as PDF ----------------------------------------------------------


def _text(c: Canvas, x_mm: float, y_mm: float, text: str, font: str, size: float) -> None:
    c.setFont(font, size)
    c.drawString(*form.to_pdf(x_mm, y_mm), text)


def _wrap(text: str, width: int) -> list[str]:
    return [text[i : i + width] for i in range(0, len(text), width)] or [""]


def _fill_form(c: Canvas, cust: _Customer, rng: random.Random, question_prefix: str = "") -> None:
    font = rng.choice(_available(JAPANESE_FONTS))
    size = rng.choice((9.5, 10.0, 10.5, 11.0))
    values = {
        "company": cust.company,
        "department": cust.department,
        "contact": cust.contact,
        "phone": cust.phone,
        "fax": cust.fax,
        "email": cust.email,
        "product": cust.product,
    }
    for key, value in values.items():
        cell = form.FIELD_RECTS_MM[key]
        _text(c, cell.x0 + 3, cell.y1 - 2.6, value, font, size)
    env = form.FIELD_RECTS_MM["environment"]
    _text(c, env.x0 + 3, env.y1 - 3.0, cust.environment, font, size - 1)
    date = form.FIELD_RECTS_MM["date"]
    _text(c, date.x0 + 3, date.y1 - 2.6, cust.date, font, size)
    box = form.FIELD_RECTS_MM["question"]
    y = box.y0 + 8
    lines = [question_prefix] if question_prefix else []
    for q in cust.questions:
        lines += _wrap(q, 38)
    for line in lines:
        if y > box.y1 - 4:
            break
        _text(c, box.x0 + 4, y, line, font, size)
        y += size * 0.3528 * 1.7


def _type_digits(c: Canvas, digits: str, rng: random.Random) -> str:
    """Type ``digits`` into the boxes in some font; returns the font's name."""
    font = rng.choice(_available(DIGIT_FONTS))
    size = rng.uniform(15.0, 22.0)
    c.setFont(font, size)
    for box, digit in zip(form.DIGIT_BOXES_MM, digits, strict=False):
        cx = (box.x0 + box.x1) / 2 + rng.uniform(-0.6, 0.6)
        base = box.y1 - (form.DIGIT_BOX_H_MM - size * 0.3528 * 0.72) / 2 + rng.uniform(-0.5, 0.5)
        x, y = form.to_pdf(cx, base)
        c.drawCentredString(x, y, digit)
    return font


def _type_ticket(c: Canvas, ticket: str, rng: random.Random) -> None:
    font = rng.choice(_available(DIGIT_FONTS))
    size = rng.uniform(12.0, 15.0)
    box = form.TICKET_BOX_MM
    _text(
        c, box.x0 + rng.uniform(2.0, 6.0), box.y1 - 3.0 + rng.uniform(-0.4, 0.4), ticket, font, size
    )


def _traps(c: Canvas, rng: random.Random, font: str) -> tuple[str, str]:
    """What every blank form carries beside the boxes: a 記入例 (example) number, valid.

    Returns the example and a serial number (valid too) for the page's text:
    neither may ever be taken for the customer's number.
    """
    example = grouped(random_number(rng))
    _text(c, 72, 44.8, f"（記入例：{example}）", font, rng.choice((7.5, 8.0, 9.0)))
    return example, grouped(random_number(rng))


def _form_pdf(
    cust: _Customer,
    rng: random.Random,
    *,
    printed: str | None,
    typed: str | None,
    ticket: str | None,
    ticket_printed: bool,
    handwritten: str | None = None,
) -> tuple[bytes, str]:
    """Our form filled in; returns the PDF and how the number was put in (the style)."""
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(form.PAGE_W_MM * mm, form.PAGE_H_MM * mm))
    form.draw_form(
        c,
        printed_digits=printed,
        qr_digits=printed,
        ticket_number=ticket if ticket_printed else None,
        vendor_name="株式会社サンプルソフトウェア サポートセンター",
        vendor_fax="03-5555-0199",
    )
    style = "printed" if printed else ""
    _, serial = _traps(c, rng, form.JAPANESE_FONT)
    if typed:
        style = _type_digits(c, typed, rng)
    if handwritten:
        style = handwriting.write_digits(c, handwritten, rng)
    if ticket and not ticket_printed:
        _type_ticket(c, ticket, rng)
    prefix = f"製品のシリアル番号は {serial} です。" if rng.random() < 0.6 else ""
    _fill_form(c, cust, rng, question_prefix=prefix)
    c.showPage()
    c.save()
    return buf.getvalue(), style


def _letter_pdf(
    cust: _Customer,
    rng: random.Random,
    *,
    number: str | None,
    ticket: str | None,
    pages: int,
) -> tuple[bytes, str]:
    """A free-form FAX: a letter with the number at the top or after its label.

    Returns the PDF and the font the number is in. Half the letters also
    give their product's serial number, in the number's printed form.
    """
    font = rng.choice(_available(JAPANESE_FONTS))
    number_font = rng.choice(_available(DIGIT_FONTS))
    size = rng.choice((10.5, 11.0, 12.0))
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(form.PAGE_W_MM * mm, form.PAGE_H_MM * mm))
    x, y = 25.0, 25.0
    step = size * 0.3528 * 1.8
    label = rng.choice(
        ("サポートサービス番号", "サポートサービス番号：", "サポート番号：", "サービス番号 ")
    )
    place = rng.choice(("top", "top", "label_top", "label_body"))
    written = grouped(number) if number and rng.random() < 0.85 else number

    def line(text: str, *, f: str = font, s: float = size, dx: float = 0.0) -> None:
        nonlocal y
        _text(c, x + dx, y, text, f, s)
        y += step

    def number_line() -> None:
        nonlocal y
        assert written is not None
        prefix = label if place != "top" else ""
        _text(c, x, y, prefix, font, size + 1)
        width = pdfmetrics.stringWidth(prefix, font, size + 1) / mm
        _text(c, x + width + 2, y, written, number_font, size + 2)
        y += step * 1.2

    if written and place in ("top", "label_top"):
        number_line()
    if ticket:
        ticket_label = rng.choice(("問合せ番号：", "問合せ番号 ", "お問合せ番号："))
        _text(c, x, y, ticket_label, font, size + 1)
        width = pdfmetrics.stringWidth(ticket_label, font, size + 1) / mm
        _text(c, x + width + 2, y, ticket, number_font, size + 1)
        y += step * 1.2
    _text(c, 150, y, cust.date, font, size)
    y += step * 1.5
    line("株式会社サンプルソフトウェア", s=size + 1)
    line("サポートセンター 御中", s=size + 1)
    y += step * 0.5
    line(cust.company, dx=95)
    line(cust.department, dx=95)
    line(f"{cust.contact}", dx=95)
    line(f"TEL {cust.phone}　FAX {cust.fax}", dx=95, s=size - 1)
    line(cust.email, dx=95, s=size - 1)
    y += step
    subject = "Re: " if ticket else ""
    line(f"件名：{subject}{cust.product}について", s=size + 1)
    y += step * 0.5
    line("いつもお世話になっております。")
    if written and place == "label_body":
        number_line()
    for q in cust.questions:
        for part in _wrap(q, 40):
            line(part)
    line(f"製品：{cust.product}")
    if rng.random() < 0.5:
        line(f"製品シリアル番号：{grouped(random_number(rng))}")
    line(f"環境：{cust.environment}", s=size - 1)
    y += step * 0.5
    line(rng.choice(_CLOSINGS))
    for extra in range(1, pages):
        c.showPage()
        y = 25.0
        line(f"（{extra + 1}枚目）")
        for q in rng.sample(_QUESTIONS, 3):
            for part in _wrap(q, 40):
                line(part)
    c.showPage()
    c.save()
    return buf.getvalue(), number_font if number else ""


# --- what the FAX machine does ---------------------------------------------

_PIL_FONT_CACHE: dict[tuple[str, int], ImageFont.FreeTypeFont] = {}


def _pil_font(name: str, size: int) -> ImageFont.FreeTypeFont:
    key = (name, size)
    if key not in _PIL_FONT_CACHE:
        path = _font_path(name)
        if path is None:
            raise FileNotFoundError(_FONT_FILES[name])
        _PIL_FONT_CACHE[key] = ImageFont.truetype(str(path), size)
    return _PIL_FONT_CACHE[key]


def _header_line(cust: _Customer, rng: random.Random, page: int, pages: int) -> str:
    when = (
        f"2026/{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:"
        f"{rng.randint(0, 59):02d}"
    )
    who = cust.company if rng.random() < 0.7 else "FAX"
    return f"{when}  {who}  FAX {cust.fax}  P.{page:03d}/{pages:03d}"


def _degrade(
    page: Image.Image,
    rng: random.Random,
    nprng: np.random.Generator,
    *,
    y_dpi: float,
    header: str,
    blot_boxes: Sequence[int],
) -> Image.Image:
    """One 300-dpi greyscale render to a 1-bit FAX page at 204 × ``y_dpi``."""
    src = page.convert("L")
    draw = ImageDraw.Draw(src)
    px = _RENDER_DPI / 25.4
    for index in blot_boxes:
        box = form.DIGIT_BOXES_MM[index]
        cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
        rx, ry = rng.uniform(5.5, 7.5), rng.uniform(7.0, 8.5)
        draw.ellipse(
            [(cx - rx) * px, (cy - ry) * px, (cx + rx) * px, (cy + ry) * px],
            fill=rng.randint(0, 40),
        )
    pushed = rng.random() < 0.5  # some machines add the header above the page
    band_mm = 4.5 if pushed else 0.0

    # One affine map from the FAX raster (square 204 dpi) back to the render:
    # skew, scale and shift of the paper in the feeder.
    angle = math.radians(rng.uniform(-3.0, 3.0))
    scale = rng.uniform(0.96, 1.03)
    shift_x, shift_y = rng.uniform(-2.0, 2.0), rng.uniform(-2.0, 2.0)
    out_w = FAX_WIDTH_PX
    out_h = round((form.PAGE_H_MM + band_mm) / 25.4 * FAX_X_DPI)
    f = FAX_X_DPI / 25.4  # fax px per mm
    cos, sin = math.cos(angle), math.sin(angle)
    # Fax pixel (u, v) -> mm on the page -> render pixel.
    ox = (out_w / f - form.PAGE_W_MM) / 2 + shift_x
    oy = band_mm + shift_y
    pcx, pcy = form.PAGE_W_MM / 2, form.PAGE_H_MM / 2

    def coeffs() -> tuple[float, ...]:
        # mm_page = R^-1 (mm_fax - centre_fax) / scale + centre_page
        a = cos / (f * scale)
        b = sin / (f * scale)
        c0 = -(ox + pcx)
        d0 = -(oy + pcy)
        return (
            a * px,
            b * px,
            (cos * c0 + sin * d0) / scale * px + pcx * px,
            -b * px,
            a * px,
            (-sin * c0 + cos * d0) / scale * px + pcy * px,
        )

    square = src.transform(
        (out_w, out_h),
        Image.Transform.AFFINE,
        coeffs(),
        resample=Image.Resampling.BILINEAR,
        fillcolor=255,
    )
    hdraw = ImageDraw.Draw(square)
    font = _pil_font("IPAGothic", 22)
    hdraw.text((rng.randint(20, 80), rng.randint(4, 10)), header, fill=0, font=font)
    if y_dpi != FAX_X_DPI:
        rows = round(out_h * y_dpi / FAX_X_DPI)
        # The scanner integrates over each (taller) line: a box filter.
        square = square.resize((out_w, rows), Image.Resampling.BOX)

    grey = np.asarray(square, dtype=np.float32)
    grey = grey + nprng.normal(0.0, rng.uniform(8.0, 28.0), grey.shape)
    ink = grey < rng.uniform(110.0, 150.0)
    speck = rng.uniform(0.0003, 0.003)
    ink |= nprng.random(ink.shape) < speck
    ink &= ~(nprng.random(ink.shape) < speck / 2)
    if rng.random() < 0.06:
        x = rng.randint(0, out_w - 3)
        ink[:, x : x + rng.randint(1, 2)] = True
    image = Image.fromarray(~ink)
    image.info["dpi"] = (FAX_X_DPI, y_dpi)
    return image


def _save(pages: list[Image.Image], path: Path, container: str, y_dpi: float) -> None:
    dpi = (FAX_X_DPI, y_dpi)
    if container == "pdf":
        # A gateway's PDF: each page at its true size, square pixels.
        square = [p.resize((p.width, round(p.height * FAX_X_DPI / y_dpi))) for p in pages]
        square[0].save(
            path, format="PDF", resolution=FAX_X_DPI, save_all=True, append_images=square[1:]
        )
        return
    compression = "group4" if container == "g4" else "group3"
    tiffinfo = {292: 1} if container == "g3-2d" else {}
    pages[0].save(
        path,
        format="TIFF",
        compression=compression,
        dpi=dpi,
        tiffinfo=tiffinfo,
        save_all=True,
        append_images=pages[1:],
    )


# --- the corpus ------------------------------------------------------------


def _blank_pdf() -> bytes:
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(form.PAGE_W_MM * mm, form.PAGE_H_MM * mm))
    c.showPage()
    c.save()
    return buf.getvalue()


def make_item(kind: str, resolution: str, container: str, seed: int, out_dir: Path) -> CorpusItem:
    """Draw, degrade and save one FAX document."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    _register_fonts()
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    cust = _customer(rng)
    number = random_number(rng)
    expected: str | None = number
    ticket: str | None = None
    blots: list[int] = []
    layout = "form"
    extra_pages = 1 if rng.random() < 0.25 else 0
    letter_pages = 1

    blank = {"printed": None, "typed": None, "ticket": None, "ticket_printed": False}
    if kind == "form_printed":
        pdf, style = _form_pdf(cust, rng, **{**blank, "printed": number})
    elif kind == "form_typed":
        pdf, style = _form_pdf(cust, rng, **{**blank, "typed": number})
    elif kind == "form_handwritten":
        pdf, style = _form_pdf(cust, rng, **blank, handwritten=number)
    elif kind == "freeform":
        layout = "free"
        letter_pages = 2 if rng.random() < 0.2 else 1
        pdf, style = _letter_pdf(cust, rng, number=number, ticket=None, pages=letter_pages)
    elif kind == "followup":
        ticket = random_ticket(rng)
        way = rng.choice(("printed", "typed", "letter"))
        if way == "letter":
            layout = "free"
            pdf, style = _letter_pdf(cust, rng, number=number, ticket=ticket, pages=1)
        else:
            pdf, style = _form_pdf(
                cust,
                rng,
                printed=number if way == "printed" else None,
                typed=number if way == "typed" else None,
                ticket=ticket,
                ticket_printed=way == "printed" and rng.random() < 0.5,
            )
    elif kind == "neg_missing":
        expected = None
        if rng.random() < 0.5:
            pdf, style = _form_pdf(cust, rng, **blank)
        else:
            layout = "free"
            pdf, style = _letter_pdf(cust, rng, number=None, ticket=None, pages=1)
    elif kind == "neg_smudged":
        expected = None
        pdf, style = _form_pdf(cust, rng, **{**blank, "typed": number})
        blots = rng.sample(range(form.DIGIT_COUNT), rng.randint(1, 2))
    else:  # neg_checkdigit
        expected = None
        bad = random_number(rng, valid=False)
        if rng.random() < 0.5:
            pdf, style = _form_pdf(cust, rng, **blank, handwritten=bad) if rng.random() < 0.5 \
                else _form_pdf(cust, rng, **{**blank, "typed": bad})
        else:
            layout = "free"
            pdf, style = _letter_pdf(cust, rng, number=bad, ticket=None, pages=1)

    suffix = ".pdf" if container == "pdf" else ".tif"
    path = out_dir / f"{kind}-{resolution}-{container}-{seed}{suffix}"
    total = fax_from_pdf(
        pdf,
        path,
        resolution=resolution,
        container=container,
        rng=rng,
        nprng=nprng,
        customer=cust,
        blank_pages=extra_pages,
        blot_boxes=blots,
    )
    return CorpusItem(
        path=path,
        kind=kind,
        resolution=resolution,
        container=container,
        expected_number=expected,
        expected_ticket=ticket,
        layout=layout,
        pages=total,
        seed=seed,
        style=style,
        sender_fax=cust.fax,
        inquiry="".join(cust.questions),
    )


def fax_customer(rng: random.Random, fax: str) -> _Customer:
    """A random customer whose FAX machine's number is ``fax`` (its header line shows it)."""
    return _Customer(**{**asdict(_customer(rng)), "fax": fax})


def handwritten_form(
    number: str,
    path: Path,
    *,
    seed: int,
    resolution: str = "fine",
    container: str = "g4",
    sender_fax: str | None = None,
    style: str | None = None,
) -> CorpusItem:
    """Our blank form with ``number`` written into the boxes by hand, sent from ``sender_fax``."""
    _register_fonts()
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    cust = _customer(rng)
    if sender_fax:
        cust = _Customer(**{**asdict(cust), "fax": sender_fax})
    blank = {"printed": None, "typed": None, "ticket": None, "ticket_printed": False}
    if style:
        pdf, used = _form_pdf_styled(cust, rng, number, style)
    else:
        pdf, used = _form_pdf(cust, rng, **blank, handwritten=number)
    total = fax_from_pdf(pdf, path, resolution=resolution, container=container, rng=rng,
                         nprng=nprng, customer=cust)
    return CorpusItem(path, "form_handwritten", resolution, container, number, None, "form",
                      total, seed, used, cust.fax)


def _form_pdf_styled(cust: _Customer, rng: random.Random, number: str,
                     style: str) -> tuple[bytes, str]:
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(form.PAGE_W_MM * mm, form.PAGE_H_MM * mm))
    form.draw_form(c, printed_digits=None, qr_digits=None, vendor_name="サポートセンター")
    _traps(c, rng, form.JAPANESE_FONT)
    used = handwriting.write_digits(c, number, rng, style)
    _fill_form(c, cust, rng)
    c.showPage()
    c.save()
    return buf.getvalue(), used


def fax_from_pdf(
    pdf: bytes,
    path: Path,
    *,
    resolution: str,
    container: str,
    rng: random.Random,
    nprng: np.random.Generator,
    customer: _Customer | None = None,
    blank_pages: int = 0,
    blot_boxes: Sequence[int] = (),
) -> int:
    """Send ``pdf`` through a simulated FAX and save what arrives; returns the page count."""
    cust = customer or _customer(rng)
    renders = poppler.render_bytes(pdf, _RENDER_DPI)
    for _ in range(blank_pages):
        renders += poppler.render_bytes(_blank_pdf(), _RENDER_DPI)
    y_dpi = RESOLUTIONS[resolution]
    total = len(renders)
    pages = [
        _degrade(
            render,
            rng,
            nprng,
            y_dpi=y_dpi,
            header=_header_line(cust, rng, i + 1, total),
            blot_boxes=blot_boxes if i == 0 else (),
        )
        for i, render in enumerate(renders)
    ]
    _save(pages, path, container, y_dpi)
    return total


def plan(
    counts: dict[str, int], seed: int, resolutions: Iterable[str] = tuple(RESOLUTIONS)
) -> list[tuple[str, str, str, int]]:
    """(kind, resolution, container, item seed) for every item, containers in rotation."""
    jobs = []
    for r_index, resolution in enumerate(resolutions):
        for k_index, kind in enumerate(KINDS):
            for i in range(counts.get(kind, 0)):
                item_seed = seed * 1_000_003 + r_index * 100_000 + k_index * 10_000 + i
                jobs.append((kind, resolution, CONTAINERS[i % len(CONTAINERS)], item_seed))
    return jobs


def generate(
    n: int | dict[str, int],
    seed: int,
    kinds: Iterable[str] = KINDS,
    resolutions: Iterable[str] = tuple(RESOLUTIONS),
    out_dir: Path | str = "fax-corpus",
) -> list[CorpusItem]:
    """``n`` items of each kind (or a count per kind) at each resolution, written to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = n if isinstance(n, dict) else dict.fromkeys(kinds, n)
    return [
        make_item(kind, resolution, container, item_seed, out)
        for kind, resolution, container, item_seed in plan(counts, seed, resolutions)
    ]
