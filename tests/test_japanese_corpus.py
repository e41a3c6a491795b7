"""The Japanese corpus reads exactly right: the 208 mails of bench/japanese_mail.py.

Subject, sender name and body of every mail, in five charsets and four shapes
and the demo mails, as bench/libraries.py scores them; the world's charset
repairs (ingest/decode.py, ingest/repair.py) must not move a single one.
"""

from __future__ import annotations

import pytest

from bench.japanese_mail import MailCase, mail_corpus
from madoguchi.config import Limits
from madoguchi.ingest.parse import parse_message

CASES = [case for case in mail_corpus(7, 5) if case.subject or case.body]


def _clean(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.group}-{c.charset}-{c.repertoire}")
def test_japanese_mail_decodes_exactly_right(case: MailCase) -> None:
    parsed = parse_message(case.raw, Limits())
    body = parsed.html if parsed.content_type == "text/html" and parsed.html else parsed.text
    assert parsed.subject == case.subject
    assert parsed.from_name == case.name
    if case.exact_body:
        assert _clean(body) == _clean(case.body)
    else:
        assert case.body in body.replace("\r\n", "\n")


def test_the_corpus_is_the_one_bench_libraries_scores() -> None:
    assert len(CASES) == 208
