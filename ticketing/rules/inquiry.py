"""Which rule of its product an inquiry gets: a licence-key request, or anything else.

ChatLuck サポートサービス約款 2(3) gives licence keys a rule of their own:
"当社営業日17時までの申請受理分につきましてはその当日中に、また当社営業日17時以降および
当社休業日の申請受理分につきましては、翌営業日に送付いたします。" Every other inquiry
gets the first response "翌営業時間内" (All Gather CRM ご利用ガイド 5). A request is
recognised by words the product configures: in the subject, in the body, or
as the value of a form line (``種別: ライセンスキー再発行``) that a web or FAX form
writes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from madoguchi.ticketing.vocabulary import InquiryKind

# "label: value", "label：value", "【label】value", "[label] value", "■label value"
_FORM_LINE = re.compile(r"^\s*[【\[■●・]?\s*([^:：】\]]{1,30}?)\s*(?:[:：】\]]|\s)\s*(.+)$")


def _fold(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


@dataclass(frozen=True)
class InquiryWords:
    """The words that make an inquiry a licence-key request (folded: NFKC, no case, no spaces)."""

    keywords: tuple[str, ...]
    form_labels: tuple[str, ...]
    form_values: tuple[str, ...]

    @classmethod
    def of(cls, keywords: Iterable[str], form_labels: Iterable[str],
           form_values: Iterable[str]) -> InquiryWords:
        def folded(words: Iterable[str]) -> tuple[str, ...]:
            return tuple(w for w in (_fold(x) for x in words) if w)

        return cls(folded(keywords), folded(form_labels), folded(form_values))


def classify_inquiry(subject: str, body: str, words: InquiryWords) -> InquiryKind:
    """``LICENSE_KEY`` when the subject or body asks for a licence key, else ``GENERAL``."""
    if any(k in _fold(subject) for k in words.keywords):
        return InquiryKind.LICENSE_KEY
    folded_body = _fold(body)
    if any(k in folded_body for k in words.keywords):
        return InquiryKind.LICENSE_KEY
    for line in body.splitlines():
        match = _FORM_LINE.match(unicodedata.normalize("NFKC", line))
        if match is None or _fold(match[1]) not in words.form_labels:
            continue
        value = _fold(match[2])
        if any(v in value for v in words.form_values):
            return InquiryKind.LICENSE_KEY
    return InquiryKind.GENERAL
