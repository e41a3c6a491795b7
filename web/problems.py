"""The FAX reader's problems (``ocr``, stored in English in ``fax_reading``) in the desk's words.

The reader writes its problems for the log and for developers; staff in
triage read them here, in Japanese. A problem no pattern knows is shown as
"読み取りの問題" with the reader's own words in brackets, so that nothing is
hidden, and a pattern is added here when that happens.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_PAGE = r"page (?P<page>\d+): "

# The reader's notes about the boxes, inside "(…)".
_NOTES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"check digit fails"), lambda m: "チェックディジットが合いません"),
    (re.compile(r"confidence below [\d.]+"), lambda m: "読み取りの確からしさが足りません"),
    (re.compile(r"PP-OCR's likeliest valid reading (?P<n>\S+) is not clear enough to confirm it"),
     lambda m: f"最も確からしい読み {m['n']} も確定できるほど明瞭ではありません"),
    (re.compile(r"read (?P<n>\d+) digits, not 12"),
     lambda m: f"{m['n']}桁しか読めません（12桁必要）"),
    (re.compile(r"unconstrained read gave (?P<v>.*)"), lambda m: f"読めた文字: {m['v']}"),
)


def _note(text: str) -> str:
    for pattern, say in _NOTES:
        m = pattern.fullmatch(text.strip())
        if m:
            return say(m)
    return text


_PROBLEMS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"no support service number found"),
     lambda m: "サポートサービス番号が見つかりません"),
    (re.compile(_PAGE + r"the QR code's number fails its check digit"),
     lambda m: f"{m['page']}ページ目: QRコードの番号のチェックディジットが合いません"),
    (re.compile(_PAGE + r"two QR codes with different numbers"),
     lambda m: f"{m['page']}ページ目: 番号の異なるQRコードが2つあります"),
    (re.compile(_PAGE + r"the QR code says (?P<qr>\S+) but the boxes read (?P<boxes>\S+)"),
     lambda m: f"{m['page']}ページ目: QRコードは {m['qr']}、記入欄は {m['boxes']} と読めます"),
    (re.compile(_PAGE + r"the support number boxes cannot be read \((?P<note>.*)\)"),
     lambda m: f"{m['page']}ページ目: サポートサービス番号の記入欄を読み取れません"
               f"（{_note(m['note'])}）"),
    (re.compile(_PAGE + r"(?P<n>.+) fails its check digit"),
     lambda m: f"{m['page']}ページ目: {m['n']} はチェックディジットが合いません"),
    (re.compile(_PAGE + r"read (?P<a>\S+) once and (?P<b>\S+) the second time"),
     lambda m: f"{m['page']}ページ目: 1回目は {m['a']}、2回目は {m['b']} と読め、一致しません"),
    (re.compile(_PAGE + r"the number read is too uncertain"),
     lambda m: f"{m['page']}ページ目: 読み取った番号が不確かです"),
    (re.compile(r"pages carry different support numbers: (?P<n>.+)"),
     lambda m: f"ページによってサポートサービス番号が異なります: {m['n']}"),
    (re.compile(r"the form's support number boxes are empty"),
     lambda m: "依頼書のサポートサービス番号の記入欄が空です"),
    (re.compile(r"the forms' support number boxes are empty \(pages (?P<p>.+)\)"),
     lambda m: f"依頼書のサポートサービス番号の記入欄が空です（{m['p']}ページ目）"),
    (re.compile(r"問合せ番号 reads disagree: (?P<n>.+)"),
     lambda m: f"問合せ番号の読み取りが一致しません: {m['n']}"),
    (re.compile(r"second look: reads saw different valid numbers: (?P<n>.+)"),
     lambda m: f"読み直しで、有効な番号が複数読めました: {m['n']}"),
)


def problem_ja(problem: str) -> str:
    """One of the reader's problems as staff read it."""
    text = str(problem).strip()
    for pattern, say in _PROBLEMS:
        m = pattern.fullmatch(text)
        if m:
            return say(m)
    return f"読み取りの問題（{text}）"
