"""The FAX reader's problems (``ocr``, stored in English in ``fax_reading``) in the desk's words.

The reader writes its problems for the log and for developers; staff in
triage read them here, in the desk's language (Japanese, or English
from the catalogue). A problem no pattern knows is shown as
"読み取りの問題" with the reader's own words in brackets, so that nothing is
hidden, and a pattern is added here when that happens.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from madoguchi.ticketing.rules.fax_number import MARGIN
from madoguchi.web.i18n import gettext as _

_PAGE = r"page (?P<page>\d+): "

# The reader's notes about the boxes, inside "(…)".
# Patterns of the reader's English and what staff read for them.
_Table = tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...]

_NOTES: _Table = (
    (re.compile(r"check digit fails"), lambda m: _("チェックディジットが合いません")),
    (re.compile(r"confidence below [\d.]+"), lambda m: _("読み取りの確からしさが足りません")),
    (re.compile(r"PP-OCR's likeliest valid reading (?P<n>\S+) is not clear enough to confirm it"),
     lambda m: _("最も確からしい読み %(n)s も確定できるほど明瞭ではありません") % m.groupdict()),
    (re.compile(r"read (?P<n>\d+) digits, not 12"),
     lambda m: _("%(n)s桁しか読めません（12桁必要）") % m.groupdict()),
    (re.compile(r"unconstrained read gave (?P<v>.*)"),
     lambda m: _("読めた文字: %(v)s")
     % m.groupdict()),
)


# Why the registered numbers did not settle the boxes (``rules.fax_number.choose_number``).
_CHOICES: _Table = (
    (re.compile(r"no reading of the boxes passes the check digit"),
     lambda m: _("チェックディジットの合う読みがありません")),
    (re.compile(r"the likeliest reading (?P<n>\d+) is no registered number; "
                r"the best registered reading is (?P<r>\d+)"),
     lambda m: _("最も確からしい読み %(n)s は登録された番号ではありません"
                 "（登録番号で最も確からしいのは %(r)s）") % m.groupdict()),
    (re.compile(r"the likeliest reading (?P<n>\d+) is no registered number"),
     lambda m: _("最も確からしい読み %(n)s は登録された番号ではありません") % m.groupdict()),
    (re.compile(r"(?P<n>\d+) is only (?P<x>\d+) times as likely as (?P<o>\d+)"),
     lambda m: _("%(n)s は %(o)s の %(x)s 倍しか確からしくありません（%(need)s 倍必要）")
     % {**m.groupdict(), "need": f"{MARGIN:,.0f}"}),
    (re.compile(r"(?P<n>\d+): a digit of it has probability (?P<p>[\d.]+)"),
     lambda m: _("%(n)s の1桁の確からしさが %(p)s しかありません") % m.groupdict()),
)


def _said(table: _Table, text: str) -> str | None:
    """``text`` by the first pattern of ``table`` it matches whole; None when none does."""
    for pattern, say in table:
        m = pattern.fullmatch(text.strip())
        if m:
            return say(m)
    return None


def _choice(text: str) -> str:
    said = _said(_CHOICES, text)
    return text if said is None else said


def _note(text: str) -> str:
    said = _said(_NOTES, text)
    return text if said is None else said


_PROBLEMS: _Table = (
    (re.compile(r"no support service number found"),
     lambda m: _("サポートサービス番号が見つかりません")),
    (re.compile(_PAGE + r"the QR code's number fails its check digit"),
     lambda m: _("%(page)sページ目: QRコードの番号のチェックディジットが合いません")
     % m.groupdict()),
    (re.compile(_PAGE + r"two QR codes with different numbers"),
     lambda m: _("%(page)sページ目: 番号の異なるQRコードが2つあります") % m.groupdict()),
    (re.compile(_PAGE + r"the QR code says (?P<qr>\S+) but the boxes read (?P<boxes>\S+)"),
     lambda m: _("%(page)sページ目: QRコードは %(qr)s、記入欄は %(boxes)s と読めます")
     % m.groupdict()),
    (re.compile(_PAGE + r"the support number boxes cannot be read \((?P<note>.*)\)"),
     lambda m: _("%(page)sページ目: サポートサービス番号の記入欄を読み取れません（%(note)s）")
     % {"page": m["page"], "note": _note(m["note"])}),
    (re.compile(_PAGE + r"the support number boxes cannot be decided \((?P<why>.*)\)"),
     lambda m: _("%(page)sページ目: サポートサービス番号の記入欄の読みを決められません（%(why)s）")
     % {"page": m["page"], "why": _choice(m["why"])}),
    (re.compile(_PAGE + r"(?P<n>.+) fails its check digit"),
     lambda m: _("%(page)sページ目: %(n)s はチェックディジットが合いません") % m.groupdict()),
    (re.compile(_PAGE + r"read (?P<a>\S+) once and (?P<b>\S+) the second time"),
     lambda m: _("%(page)sページ目: 1回目は %(a)s、2回目は %(b)s と読め、一致しません")
     % m.groupdict()),
    (re.compile(_PAGE + r"the number read is too uncertain"),
     lambda m: _("%(page)sページ目: 読み取った番号が不確かです") % m.groupdict()),
    (re.compile(r"pages carry different support numbers: (?P<n>.+)"),
     lambda m: _("ページによってサポートサービス番号が異なります: %(n)s") % m.groupdict()),
    (re.compile(r"the form's support number boxes are empty"),
     lambda m: _("依頼書のサポートサービス番号の記入欄が空です")),
    (re.compile(r"the forms' support number boxes are empty \(pages (?P<p>.+)\)"),
     lambda m: _("依頼書のサポートサービス番号の記入欄が空です（%(p)sページ目）") % m.groupdict()),
    (re.compile(r"問合せ番号 reads disagree: (?P<n>.+)"),
     lambda m: _("問合せ番号の読み取りが一致しません: %(n)s") % m.groupdict()),
    (re.compile(r"second look: reads saw different valid numbers: (?P<n>.+)"),
     lambda m: _("読み直しで、有効な番号が複数読めました: %(n)s") % m.groupdict()),
)


def problem_ja(problem: str) -> str:
    """One of the reader's problems as staff read it."""
    text = str(problem).strip()
    said = _said(_PROBLEMS, text)
    return _("読み取りの問題（%(text)s）") % {"text": text} if said is None else said
