"""Follow-ups written the way customers write them, and the support number as written.

Through the real pipeline on SQLite and PostgreSQL: a new mail without
references that quotes the ticket number after 受付番号 (and its kin) joins
the ticket; a stranger quoting it gets a new ticket, linked and flagged. The
ticket's support number is its contract's, never an unchecked one; what the
customer wrote is ``support_number_written`` in the export, the CLI and the
ticket page. The desk's own mails name the number so that the rule finds it.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from madoguchi.app import Desk
from madoguchi.ingest.inbound import OutcomeKind
from madoguchi.ingest.parse import parse_message
from madoguchi.ticketing.models import OutboxMessage, StaffUser
from madoguchi.ticketing.render import render_ticket
from madoguchi.ticketing.replies import build_reply
from madoguchi.ticketing.signatures import signature_for
from madoguchi.ticketing.ticket_number import quoted_numbers
from madoguchi.ticketing.views import export_records
from tests.test_pipeline import ingest, register_demo_customers, ticket

CONTACT = "yamada@sakura-shoji.example.jp"
STRANGER = "someone@freemail.example.com"


def utf8_mail(subject: str, body: str, *, sender: str = CONTACT, mid: str) -> bytes:
    words = "=?UTF-8?B?" + base64.b64encode(subject.encode()).decode() + "?="
    return (
        f"From: {sender}\r\nTo: support@example.co.jp\r\nSubject: {words}\r\n"
        f"Date: Tue, 24 Nov 2026 11:00:00 +0900\r\nMessage-ID: <{mid}>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode() + body.replace("\n", "\r\n").encode()


@pytest.fixture
def registered(desk: Desk) -> Desk:
    return register_demo_customers(desk)


def opened(desk: Desk, mid: str = "first@sakura-shoji.example.jp") -> str:
    out = ingest(desk, utf8_mail("ログインできません", "サポートサービス番号: 2031-0001-0008\n"
                                 "ログインできません。", mid=mid))
    assert out.kind is OutcomeKind.CREATED and out.ticket_number
    return out.ticket_number


FOLLOW_UPS = {
    "label_受付番号": ("追加情報", "受付番号：{n} の件で、追加のログを送ります。"),
    "label_受付No": ("追加情報", "受付No. {n}\n再起動しても直りません。"),
    "full_width": ("追加情報", "受付番号 {wide}\nまだ直りません。"),
    "brackets_【】": ("追加情報", "お問い合わせ番号【{n}】の件です。"),
    "subject_tag_【】": ("【{n}】再発しました", "また同じエラーです。"),
    "quoted_acknowledgement": ("Re: 受付のお知らせ", "直りません。\n\n"
                               "> 下記のとおり受け付けました。\n"
                               ">   受付番号：{n}\n>   件名　　：ログインできません"),
    "english": ("More information", "Inquiry No.: {n}\nStill broken."),
    "parentheses": ("追加情報", "問合せ番号（{n}）について、続報です。"),
}


def wide(number: str) -> str:
    return number.translate(str.maketrans("T-0123456789", "Ｔ－０１２３４５６７８９"))


@pytest.mark.parametrize("case", sorted(FOLLOW_UPS))
def test_a_follow_up_quoting_its_number_as_customers_write_it_joins_the_ticket(
    registered: Desk, case: str
) -> None:
    number = opened(registered)
    subject, body = FOLLOW_UPS[case]
    raw = utf8_mail(subject.format(n=number), body.format(n=number, wide=wide(number)),
                    mid=f"{case}@sakura-shoji.example.jp")
    out = ingest(registered, raw)
    assert out.kind is OutcomeKind.THREADED, case
    assert out.ticket_number == number


def test_a_stranger_quoting_the_number_gets_a_new_linked_flagged_ticket(registered: Desk) -> None:
    number = opened(registered)
    out = ingest(registered, utf8_mail("進捗", f"受付番号：{number} の進捗を教えてください。",
                                       sender=STRANGER, mid="stranger@freemail.example.com"))
    assert out.kind is OutcomeKind.CREATED and out.ticket_number != number
    t = ticket(registered, out.ticket_number or "")
    assert t.linked_ticket is not None and t.linked_ticket.number == number
    assert "unregistered_sender" in t.flag_names


def test_a_contacts_number_with_a_wrong_check_digit_is_only_what_was_written(
    registered: Desk,
) -> None:
    out = ingest(registered, utf8_mail("質問", "サポートサービス番号: 2031-0001-0009\n質問です。",
                                       mid="wrongdigit@sakura-shoji.example.jp"))
    t = ticket(registered, out.ticket_number or "")
    assert t.contract is not None
    assert t.support_number == "203100010008"  # the contract's, validated
    assert t.support_number_written == "203100010009"  # as the contact wrote it
    with registered.factory() as session:
        record = next(r for r in export_records(session, registered.settings.tz,
                                                registered.settings.support_number)
                      if r["number"] == t.number)
    assert record["support_number"] == "2031-0001-0008"
    assert record["support_number_written"] == "2031-0001-0009"
    assert "support_number_written: 2031-0001-0009" in render_ticket(t, registered.settings)


def test_a_strangers_invalid_number_is_no_ticket_support_number(registered: Desk) -> None:
    out = ingest(registered, utf8_mail("質問", "サポートサービス番号: 2577-3190-6482\n質問です。",
                                       sender=STRANGER, mid="strangernum@freemail.example.com"))
    t = ticket(registered, out.ticket_number or "")
    assert t.support_number is None and t.contract is None
    assert t.support_number_written == "257731906482"
    assert {"unregistered_sender", "unknown_support_number"} <= set(t.flag_names)


def test_the_acknowledgement_names_the_number_so_a_reply_without_tag_or_references_joins(
    registered: Desk,
) -> None:
    number = opened(registered)
    with registered.factory() as session:
        ack = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "ack")).one()
        raw = ack.raw
    sent = parse_message(raw, registered.settings.limits)
    labels = registered.settings.threading.ticket_labels
    assert quoted_numbers(sent.text, "T", labels) == [number]
    quoted = "\n".join("> " + line for line in sent.text.splitlines())
    reply = utf8_mail("Re: お問い合わせの件", "まだ直りません。\n\n" + quoted,
                      mid="ackreply@sakura-shoji.example.jp")
    out = ingest(registered, reply)
    assert out.kind is OutcomeKind.THREADED and out.ticket_number == number


def test_a_staff_reply_names_the_number_so_a_reply_without_tag_or_references_joins(
    registered: Desk,
) -> None:
    number = opened(registered)
    t = ticket(registered, number)
    user = StaffUser(login="sato", name="佐藤 彩香")
    with registered.factory() as session:
        t = session.merge(t)
        sign = signature_for(session, t, user, registered.settings, registered.deadlines)
        msg = build_reply(t, t.messages[0], registered.settings, user, to=[], cc=[],
                          body="ご確認ください。", include_quote=True,
                          now=datetime(2026, 11, 24, 3, 0, tzinfo=UTC), signature=sign)
    sent = parse_message(bytes(msg), registered.settings.limits)
    assert quoted_numbers(sent.text, "T", registered.settings.threading.ticket_labels) == [number]
    quoted = "\n".join("> " + line for line in sent.text.splitlines())
    out = ingest(registered, utf8_mail("Re: ご回答", "承知しました。\n" + quoted,
                                       mid="staffreply@sakura-shoji.example.jp"))
    assert out.kind is OutcomeKind.THREADED and out.ticket_number == number
