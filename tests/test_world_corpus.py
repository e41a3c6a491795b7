"""The world's mail, byte-exact as those mailers write it (tests/corpus/world/*.eml).

Each file is one defect seen on real mail; the table says what the desk must
read from it. Japanese mail has its own corpus (bench/japanese_mail.py, checked
in tests/test_japanese_corpus.py), whose results these repairs must not move.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from madoguchi.config import Limits
from madoguchi.ingest.message import ParsedMessage
from madoguchi.ingest.parse import parse_message

CORPUS = Path(__file__).resolve().parent / "corpus" / "world"

# file -> the fields it must read as ("text_has": a sentence the text contains,
# "defect": a defect that must be recorded, "attachment": (filename, sha256 of payload)).
EXPECTED: dict[str, dict[str, Any]] = {
    "gb2312-with-gbk-extensions.eml": {
        "subject": "关于朱镕基的堃字问题", "from_name": "王先生",
        "text_has": "您好，镕和堃两个字显示为乱码。"},
    "raw-8bit-latin1-subject.eml": {
        "subject": "Lieferadresse Hofjägeralle 5",
        "text_has": "Bitte liefern Sie an die Hofjägeralle 5."},
    "raw-8bit-subject-part-declares-gb2312.eml": {
        "subject": "登录问题", "text_has": "无法登录系统。"},
    "raw-8bit-latin1-filename.eml": {
        "attachment": ("Wölbung.pdf", hashlib.sha256(b"%PDF-1.4 test").hexdigest())},
    "body-without-charset-latin1.eml": {
        "text_has": "Die Umlaute äöüß werden falsch angezeigt.\nMit freundlichen Grüßen"},
    "mixed-utf8-and-latin1-unknown-label.eml": {
        "text_has": "Le café est prêt.\nMit freundlichen Grüßen", "defect": "MixedCharset"},
    "encoded-words-with-spaces.eml": {"subject": "ABC / 123Bestellung für Müller"},
    "unindented-header-continuation.eml": {
        "subject": "License renewal", "from_addr": "jane@example.org",
        "to": ("support@example.co.jp", "sales@example.co.jp"),
        "text": "Please renew our license.", "defect": "UnindentedContinuation"},
    "junk-line-above-headers.eml": {
        "subject": "Forwarded question", "from_addr": "jane@example.org",
        "text": "How do I export the CSV?", "defect": "JunkBeforeHeaders"},
    "empty-plain-alternative.eml": {"text": "The export button is greyed out."},
    "html-parts-beside-plain.eml": {
        "text": "See the report below.\nThe server stops with error 500 after login.\n"
                "It started on Monday.",
        "html_parts": 2},
    # Several addresses leave the sender unknown (as DMARC reads them), and the
    # name is the first mailbox's own, never paired with the second's address.
    "from-mailbox-list.eml": {
        "from_name": "Jane Doe", "from_addr": "", "defect": "MultipleFromMailboxes"},
    "from-broken-encoded-word-with-comma.eml": {
        "from_name": "Müller, Hans", "from_addr": "hans@example.de"},
    "uuencode-without-begin.eml": {
        "attachment": ("server.log",
                       hashlib.sha256(b"Line one of the log\nLine two of the log\n").hexdigest())},
    "bidi-controls-in-subject.eml": {"subject": "Invoice fdp.exe", "from_name": "evil Name"},
    "duplicate-from.eml": {"from_name": "First Sender", "from_addr": "first@example.org"},
    "windows-1252-smart-quotes-labelled-latin1.eml": {
        "text": "The button says “Export” – nothing happens."},
    "ks_c_5601-korean.eml": {"subject": "똠방각하 문의", "text": "똠방각하 로그인이 안 됩니다."},
}


def parsed(name: str) -> ParsedMessage:
    return parse_message((CORPUS / name).read_bytes(), Limits())


def test_every_mail_of_the_corpus_has_its_expectation() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.eml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_world_mail_reads_as_its_sender_wrote_it(name: str) -> None:
    msg, expected = parsed(name), EXPECTED[name]
    for field in ("subject", "from_name", "from_addr", "to", "text"):
        if field in expected:
            assert getattr(msg, field) == expected[field], field
    if "text_has" in expected:
        assert expected["text_has"] in msg.text
    if "defect" in expected:
        assert any(d.startswith(expected["defect"]) for d in msg.defects), msg.defects
    if "attachment" in expected:
        filename, digest = expected["attachment"]
        assert [(a.filename, hashlib.sha256(a.payload).hexdigest()) for a in msg.attachments] == [
            (filename, digest)]
    if "html_parts" in expected:
        assert len([h for h in (msg.html, *msg.more_html) if h]) == expected["html_parts"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_world_mail_keeps_no_private_use_or_replacement_characters(name: str) -> None:
    msg = parsed(name)
    for text in (msg.subject, msg.from_name, msg.text, *(a.filename for a in msg.attachments)):
        assert not any("\ue000" <= ch <= "\uf8ff" or ch == "\ufffd" for ch in text), text
