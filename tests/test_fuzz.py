"""Fuzzing the parse and identify steps, and the whole pipeline, for a bounded time.

Hypothesis drives every target with a fixed number of examples (no deadline:
the machine is shared), so the file runs in well under a minute: raw bytes
and mutated realistic mails into ``parse_message``, text into the support
number and ticket number finders, evidence into ``decide_thread``, names
into ``safe_filename``, markup into ``sanitize_html``, and batches of
mutated mails through ``Pipeline.ingest_batch`` on a real database. The
properties are the ones tests/test_hostile_input.py checks on its corpus.

Longer runs: ``HYPOTHESIS_PROFILE=long`` (ten times the examples), and the
coverage-guided tests/fuzz_atheris.py (see its docstring).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from madoguchi.app import Desk
from madoguchi.config import SupportNumberSettings, load_settings
from madoguchi.config.settings import TICKET_LABELS
from madoguchi.ingest.filenames import MAX_FILENAME_BYTES, safe_filename
from madoguchi.ingest.htmltext import html_to_text, sanitize_html
from madoguchi.ingest.inbound import Inbound
from madoguchi.ingest.pipeline import Pipeline
from madoguchi.ticketing.models import Attachment, Message, OutboxMessage
from madoguchi.ticketing.rules.threading import (
    ThreadAction,
    ThreadEvidence,
    TicketSnapshot,
    decide_thread,
)
from madoguchi.ticketing.support_number import find_support_number, luhn_valid
from madoguchi.ticketing.ticket_number import quoted_numbers, subject_tags
from tests.conftest import _sqlite_url
from tests.hostile import (
    CONTACT,
    KNOWN_REASONS,
    SUPPORT_NUMBER,
    XSS_VECTORS,
    assert_storable,
    desk_overrides,
    encoded_word,
    filename_problems,
    html_problems,
    outcome_label,
    outgoing_header_problems,
    parse_or_refuse,
    register_customers,
)
from tests.mailfactory import make_bounce, make_mail

# The system lane: whole processes, for minutes (tests/conftest.py).
pytestmark = pytest.mark.slow

# Examples per target; HYPOTHESIS_PROFILE=long runs ten times as many.
SCALE = 10 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 1
NUMBERS = SupportNumberSettings()
LABELS = TICKET_LABELS
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples * SCALE, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])


# -- realistic mail, then broken ------------------------------------------------------------------

SEEDS = [
    make_mail(),
    make_mail(from_=("山田 太郎", CONTACT), body=f"サポートサービス番号: {SUPPORT_NUMBER}\n障害"),
    make_mail(charset="shift_jis", attachments=[("見積書①.pdf", "application/pdf", b"%PDF-1.4 x")]),
    make_mail(charset="utf-8", body=None, html="<p>本文<script>x()</script></p>",
              filename_style="rfc2047", attachments=[("../名前.txt", "text/plain", b"a")]),
    make_mail(charset="euc-jp", in_reply_to="a@b.example", references=["r@b.example"]),
    make_mail(charset="cp932", transfer_encoding="quoted-printable", declared_charset="utf-8"),
    make_mail(subject="Re: [T-2026-000001] 続報", cc=[("髙橋", "takahashi@sakura.example.jp")]),
    make_bounce(make_mail()),
    make_bounce(make_mail(), headers_only=True),
]
CHUNKS = [
    b"\x00", b"\r", b"\n", b"\r\n", b"\r\n\r\n", b"\r\n ", b"--", b"boundary=", b"--b--\r\n",
    b'Content-Type: multipart/mixed; boundary="b"\r\n', b"Content-Type: message/rfc822\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"=?utf-8?b?", b"=?iso-2022-jp?q?", b"?=",
    b"<script>", b"<img src=x onerror=a()>", b"\xff\xfe", b"\x1b$B", b"\x1b(B", b"\x0e", b"=\r\n",
    b"=ZZ", b"../", b"CON", b"filename*0*=UTF-8''%0D%0A", b'filename="..\\x"', b"<", b">", b"(",
    b'"', b":", b";", b"@", b" " * 64, b"\t", b"Subject: ", b"From: ", b"Bcc: x@evil.example\r\n",
    b"\xe5\x95\x8f\xe5\x90\x88\xe3\x81\x9b\xe7\x95\xaa\xe5\x8f\xb7: T-2026-000001",
    b"2031-0001-0008", b"Date: Fri, 31 Dec 9999 23:59:59 -1200\r\n", b"\x85", b"\xe2\x80\xa8",
]


@st.composite
def mutated_mail(draw: st.DrawFn) -> bytes:
    """A realistic mail with a few byte-level mutations: flips, hostile chunks, cuts, repeats."""
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(raw)))
        op = draw(st.sampled_from(("flip", "insert", "chunk", "delete", "repeat", "cut")))
        if op == "flip" and at < len(raw):
            raw[at] = draw(st.integers(0, 255))
        elif op == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "chunk":
            raw[at:at] = draw(st.sampled_from(CHUNKS)) * draw(st.integers(1, 4))
        elif op == "delete":
            del raw[at : at + draw(st.integers(1, 64))]
        elif op == "repeat":
            raw[at:at] = raw[at : at + draw(st.integers(1, 256))] * draw(st.integers(1, 8))
        elif op == "cut":
            del raw[at:]
    return bytes(raw)


@fuzz(1000)
@given(st.binary(max_size=4096))
def test_parse_message_reads_any_bytes_or_refuses_them_with_a_reason(raw: bytes):
    message = parse_or_refuse(raw)
    if message is not None:
        assert_storable(message)


@fuzz(1000)
@given(mutated_mail())
def test_parse_message_reads_mutated_mail_or_refuses_it_with_a_reason(raw: bytes):
    message = parse_or_refuse(raw)
    if message is not None:
        assert_storable(message)
        for attachment in message.attachments:
            assert filename_problems(safe_filename(attachment.filename,
                                                   attachment.content_type)) == []


@fuzz(150)
@given(st.lists(st.sampled_from(CHUNKS), max_size=40), st.binary(max_size=200))
def test_parse_message_survives_header_blocks_made_of_hostile_pieces(pieces, tail):
    raw = b"From: " + CONTACT.encode() + b"\r\n" + b"".join(pieces) + b"\r\n\r\n" + tail
    message = parse_or_refuse(raw)
    if message is not None:
        assert_storable(message)


# -- identify -------------------------------------------------------------------------------------

digit = st.sampled_from("0123456789０１２３４５６７８９")
separator = st.sampled_from("-‐－ー　 ")
number_like = st.lists(st.one_of(digit, separator), min_size=6, max_size=40).map("".join)
label = st.sampled_from(["サポートサービス番号", "サポート番号", "Support No", "問合せ番号",
                         "お問い合わせ番号", "Ticket No."])
prose = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60)
identify_text = st.lists(st.one_of(number_like, label, prose, st.just("\n"), st.just(":"),
                                   st.just("[T-2026-000123]"), st.just("T-2026-000001")),
                         max_size=20).map("".join)


@fuzz(300)
@given(identify_text, identify_text)
def test_a_support_number_found_is_always_a_valid_one(subject: str, body: str):
    found = find_support_number(subject, body, NUMBERS)
    if found.number is not None:
        assert re.fullmatch(NUMBERS.digits_pattern, found.number.digits)
        assert luhn_valid(found.number.digits)
        folded = re.sub(r"\D", "", unicodedata.normalize("NFKC", subject + body))
        assert found.number.digits in folded
    for invalid in found.invalid:
        assert not luhn_valid(invalid)


@fuzz(300)
@given(identify_text)
def test_ticket_numbers_found_are_well_formed(text: str):
    for number in [*subject_tags(text, "T"), *quoted_numbers(text, "T", LABELS)]:
        assert re.fullmatch(r"T-\d{4}-\d{6}", number)


@fuzz(200)
@given(prose, st.sampled_from(["Re: ", "RE: Fwd: ", "返信: ", "転送: ", ""]), prose)
def test_a_subject_tag_is_found_whatever_surrounds_it(before: str, prefix: str, after: str):
    subject = f"{prefix}{before}[T-2026-000123]{after}"
    assert "T-2026-000123" in subject_tags(subject, "T")


addresses = st.sampled_from(["yamada@sakura.example.jp", "cc@sakura.example.jp",
                             "stranger@evil.example", ""])
snapshots = st.builds(
    TicketSnapshot,
    id=st.integers(1, 5),
    number=st.sampled_from(["T-2026-000001", "T-2026-000002"]),
    closed_at=st.one_of(st.none(), st.integers(0, 60).map(lambda d: NOW - timedelta(days=d))),
    participants=st.frozensets(addresses),
    contact_emails=st.frozensets(addresses),
)


@fuzz(400)
@given(st.one_of(st.none(), snapshots), st.one_of(st.none(), snapshots),
       st.one_of(st.none(), snapshots), addresses, st.integers(0, 30))
def test_decide_thread_never_lets_a_stranger_into_a_ticket_by_tag_or_number(
    by_reference, by_tag, by_body, sender, reopen_days
):
    evidence = ThreadEvidence(by_reference, by_tag, by_body)
    decision = decide_thread(evidence, sender, NOW, reopen_days)
    if decision.action in (ThreadAction.JOIN, ThreadAction.REOPEN):
        assert decision.ticket is not None
        if decision.rule != "references":
            trusted = decision.ticket.participants | decision.ticket.contact_emails
            assert sender and sender in trusted
        if decision.action is ThreadAction.REOPEN:
            assert decision.ticket.closed_at is not None
    if decision.unregistered_sender:
        assert decision.action is ThreadAction.NEW_LINKED
    if by_reference is not None:
        assert decision.ticket == by_reference
    elif by_tag is None and by_body is None:
        assert decision.action is ThreadAction.NEW


# -- names and markup -----------------------------------------------------------------------------

name_pieces = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["../", "..\\", "/", "\\", ".", " ", "CON", "aux", "NUL", "COM1", "LPT9",
                     "¹", ":", "*", "\x00", "\r\n", "\u202e", "\u2028", "\udcff", "あ" * 60,
                     ".pdf", ".tar.gz", "e" * 40]),
)


@fuzz(600)
@given(st.lists(name_pieces, max_size=12).map("".join),
       st.sampled_from(["application/pdf", "text/plain", "x/unknown", ""]))
def test_safe_filename_is_always_safe_and_stable(name: str, content_type: str):
    safe = safe_filename(name, content_type)
    assert filename_problems(safe) == []
    assert len(safe.encode("utf-8")) <= MAX_FILENAME_BYTES
    assert safe_filename(safe, content_type) == safe


markup = st.one_of(
    st.sampled_from([vector for _, vector in XSS_VECTORS]),
    st.sampled_from(["<", ">", "</", "<!--", "-->", "<!", "<?", "&", "&#", "&#x6A;", "\"", "'",
                     "=", " ", "\n", "\x00", "<a href=", "javascript:", "<img src=", "onerror=",
                     "<svg>", "<math>", "<style>", "</style>", "<script>", "</script>",
                     "<textarea>", "<title>", "<noscript>", "<iframe>", "<p>", "<div>", "</div>",
                     "style=", "url(", "expression(", "<base href=//x>", "本文"]),
    st.text(max_size=10),
)


@fuzz(600)
@given(st.lists(markup, max_size=30).map("".join))
def test_sanitized_html_keeps_nothing_that_runs_or_fetches(html: str):
    clean = sanitize_html(html)
    assert html_problems(clean) == []
    assert sanitize_html(clean) == clean  # the web view sanitises stored HTML again
    assert isinstance(html_to_text(html), str)


# -- the whole pipeline ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Desk, Pipeline]]:
    root = tmp_path_factory.mktemp("fuzz-desk")
    desk = Desk.open(load_settings(None, **desk_overrides(_sqlite_url(root, tmp_path_factory),
                                                          root)))
    register_customers(desk)
    # In this process: a hundred small batches would spend their time starting workers.
    yield desk, Pipeline(desk.settings, desk.factory, desk.blobs, parse_workers=0)
    desk.close()


pipeline_mail = st.one_of(
    mutated_mail(),
    st.builds(
        lambda subject, name, body: make_mail(
            subject=subject, from_=(name, CONTACT), charset="utf-8",
            body=f"サポートサービス番号: {SUPPORT_NUMBER}\n{body}",
        ),
        st.one_of(prose, prose.map(encoded_word)), prose, prose,
    ),
)


@fuzz(150)
@given(st.lists(pipeline_mail, min_size=1, max_size=4))
def test_the_pipeline_stores_or_quarantines_every_mutated_mail(
    fuzz_desk: tuple[Desk, Pipeline], mails: list[bytes]
):
    desk, pipeline = fuzz_desk
    outcomes = pipeline.ingest_batch([Inbound(raw, "fuzz", f"m{i}") for i, raw in
                                      enumerate(mails)])
    for outcome in outcomes:
        label = outcome_label(outcome)
        if label.startswith("quarantined:"):
            assert label.split(":", 1)[1] in KNOWN_REASONS, outcome.reason
        else:
            assert label in ("created", "threaded", "duplicate")
    with desk.factory() as session:
        newest = session.scalars(select(Message).order_by(Message.id.desc()).limit(4)).all()
        for message in newest:
            assert html_problems(message.html or "") == []
            for attachment in message.attachments:
                assert filename_problems(attachment.filename) == []
        for row in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc())
                                   .limit(4)):
            assert outgoing_header_problems(row.raw, recipient=row.rcpt_to[0]) == []
        assert session.scalar(select(Attachment.id).where(Attachment.filename == "")) is None


# -- the coverage-guided fuzzer, briefly ----------------------------------------------------------


def test_the_atheris_fuzzer_runs_ten_seconds_without_a_finding(tmp_path: Path):
    import atheris  # noqa: F401 - a test dependency: missing, the test fails
    # A fixed seed, so that a finding here can be replayed; the longer,
    # randomly seeded runs are done by hand (tests/fuzz_atheris.py).
    result = subprocess.run(
        [sys.executable, "-m", "tests.fuzz_atheris", "--target", "parse", "--seconds", "10",
         "--workdir", str(tmp_path), "--", "-seed=1"],
        cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done" in result.stderr
    assert not list(tmp_path.glob("crash-*"))
