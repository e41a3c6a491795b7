"""A desk serving both vendors' products, end to end: each mail gets its product's calendar
and rule, the period covering the day it came decides entitlement, and what is out of scope
is promised nothing until staff accept it (SQLite and PostgreSQL).

The terms: ChatLuck サポートサービス約款 2(1) "午前9:00~12:00 および 午後1:00~5:30", 2(3)
"当社営業日17時までの申請受理分につきましてはその当日中に"; All Gather CRM ご利用ガイド 5
"9：30～12：00、13：00～17：30", "弊社営業時間外にメールを頂いた場合、原則として翌営業時間内の
一次対応となります", 4(2)① "ご質問・お問い合わせができる方は、窓口担当者として登録された方のみ".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from madoguchi.app import Desk
from madoguchi.config import Settings, load_settings
from madoguchi.ingest.inbound import Inbound
from madoguchi.ticketing.customers_csv import import_rows, read_rows
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.escalation import tickets_awaiting
from madoguchi.ticketing.models import InquiryKind, OutboxMessage, Ticket
from madoguchi.ticketing.support_number import parse_support_number
from madoguchi.ticketing.triage import accept_as_customer
from madoguchi.ticketing.views import ticket_by_number
from tests.mailfactory import make_mail

JST = ZoneInfo("Asia/Tokyo")
DEMO = Path(__file__).resolve().parent.parent / "demo"


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=JST)  # type: ignore[misc]


def two_products(database_url: str, tmp_path: Path, **more: Any) -> Settings:
    return load_settings(
        None, database_url=database_url, storage_dir=tmp_path / "storage",
        sources=[{"name": "agcrm-mail", "kind": "maildir", "path": str(tmp_path / "md")}],
        products=[{"preset": "chatluck", "default": True},
                  {"preset": "agcrm", "sources": ["agcrm-mail"]}],
        **more,
    )


def open_desk(settings: Settings) -> Desk:
    desk = Desk.open(settings)
    rows = read_rows((DEMO / "customers.csv").read_text(encoding="utf-8"),
                     settings.support_number, desk.deadlines.products)
    with transaction(desk.factory) as s:
        import_rows(s, rows)
    return desk


@pytest.fixture
def desk2(database_url: str, tmp_path: Path) -> Iterator[Desk]:
    desk = open_desk(two_products(database_url, tmp_path))
    yield desk
    desk.close()


CONTACTS = {
    "sakura": ("山田 太郎", "yamada@sakura-shoji.example.jp", "2031-0001-0008"),
    "minato": ("佐藤 一郎", "sato@minato-ss.example.jp", "2031-0002-0007"),
    "hikari": ("鈴木 次郎", "suzuki@hikari-soft.example.jp", "2031-0003-0006"),
    "asahi": ("田中 美咲", "tanaka@asahi-kikaku.example.jp", "2031-0005-0004"),
    "kodama": ("伊藤 健", "ito@kodama-butsuryu.example.jp", "2031-0006-0003"),
    "kodama-chat": ("小林 誠", "kobayashi@kodama-butsuryu.example.jp", "2031-0007-0002"),
}


def send(desk: Desk, who: str, received: datetime, *, subject: str = "質問です",
         number: str | None = None, text: str = "操作方法を教えてください。",
         source: str = "test", sender: tuple[str, str] | None = None) -> Ticket:
    name, address, own = CONTACTS[who]
    raw = make_mail(subject=subject, from_=sender or (name, address), charset="utf-8",
                    body=f"サポートサービス番号 {number or own}\n\n{text}\n",
                    message_id=f"{who}.{received.timestamp()}.{subject}@example.jp",
                    date=received)
    outcome = desk.pipeline.ingest(Inbound(raw, source, "ref", received_at=received))
    assert outcome.ticket_number, outcome
    with desk.factory() as s:
        ticket = ticket_by_number(s, outcome.ticket_number)
        assert ticket is not None
        return ticket


def test_each_contract_opens_at_its_products_hour(desk2: Desk) -> None:
    # Monday 2026-11-23 is 勤労感謝の日: work starts on Tuesday, at each product's opening.
    chat = send(desk2, "sakura", jst(2026, 11, 23, 10, 0))
    crm = send(desk2, "minato", jst(2026, 11, 23, 10, 0))
    assert (chat.product, chat.work_starts_at) == ("ChatLuck", jst(2026, 11, 24, 9, 0))
    assert (crm.product, crm.work_starts_at) == ("All Gather CRM", jst(2026, 11, 24, 9, 30))
    assert chat.first_response_due == crm.first_response_due == jst(2026, 11, 24, 17, 30)


def test_a_licence_key_request_gets_the_cut_off_and_the_rest_the_next_business_hours(
    desk2: Desk,
) -> None:
    late = jst(2026, 11, 25, 17, 10)
    key = send(desk2, "kodama-chat", late, subject="ライセンスキー再発行のお願い")
    other = send(desk2, "kodama-chat", late, subject="既読表示について")
    assert key.inquiry_kind is InquiryKind.LICENSE_KEY
    assert key.first_response_due == jst(2026, 11, 26, 17, 30)
    assert other.inquiry_kind is InquiryKind.GENERAL
    assert other.first_response_due == jst(2026, 11, 25, 17, 30)


def test_a_monthly_cloud_customer_is_in_force_after_the_first_months_end(desk2: Desk) -> None:
    """All Gather CRM 3: "初月度より更に1ヶ月間自動的に同一内容で契約が更新されます。"""
    t = send(desk2, "kodama", jst(2027, 2, 3, 10, 0))  # notified 2026-09-14; 4th renewal
    assert t.flag_names == [] and t.first_response_due == jst(2027, 2, 3, 17, 30)


def test_writing_before_the_trial_starts_is_not_started_and_promised_nothing(
    desk2: Desk,
) -> None:
    early = send(desk2, "asahi", jst(2026, 11, 13, 10, 0))  # the notice is of 11/16
    assert early.flag_names == ["contract_not_started"]
    assert early.first_response_due is None and early.work_starts_at is None
    during = send(desk2, "asahi", jst(2026, 12, 15, 10, 0), subject="別件")
    assert during.flag_names == []
    after = send(desk2, "asahi", jst(2026, 12, 16, 10, 0), subject="さらに別件")
    assert after.flag_names == ["contract_expired"]


def accept(desk: Desk, number: str, digits: str, when: datetime, *, register: bool) -> None:
    """Staff accept the ticket as the customer's of ``digits`` at ``when`` (triage)."""
    with transaction(desk.factory) as s:
        ticket = ticket_by_number(s, number)
        assert ticket is not None
        support = parse_support_number(digits, desk.settings.support_number)
        assert support is not None
        accept_as_customer(s, ticket, support, register, None, desk.settings, desk.deadlines,
                           when)


def _outbox(desk: Desk) -> list[tuple[str, str]]:
    with desk.factory() as s:
        return [(o.dedupe_key, o.raw.decode("ascii", "replace"))
                for o in s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]


def test_an_expired_contracts_mail_gets_no_deadline_no_reminder_and_no_promise(
    desk2: Desk,
) -> None:
    t = send(desk2, "hikari", jst(2026, 11, 24, 19, 22))
    assert t.flag_names == ["contract_expired"] and t.first_response_due is None
    assert _outbox(desk2) == []  # out_of_scope = "none" by default
    with desk2.factory() as s:
        assert t.number not in [w.number for w in tickets_awaiting(s)]
    # Staff accept it: the first-response time starts then.
    accepted = jst(2026, 11, 26, 11, 0)
    accept(desk2, t.number, "2031-0003-0006", accepted, register=False)
    with desk2.factory() as s:
        ticket = ticket_by_number(s, t.number)
        assert ticket is not None and ticket.flag_names == []
        assert ticket.work_starts_at == accepted
        assert ticket.first_response_due == jst(2026, 11, 26, 17, 30)
        assert t.number in [w.number for w in tickets_awaiting(s)]


def test_a_desk_that_sends_notices_words_one_for_the_case(database_url: str,
                                                          tmp_path: Path) -> None:
    desk = open_desk(two_products(database_url, tmp_path,
                                  acknowledgement={"out_of_scope": "notice"}))
    try:
        t = send(desk, "hikari", jst(2026, 11, 24, 19, 22))
        in_scope = send(desk, "sakura", jst(2026, 11, 24, 19, 30))
        assert [key for key, _ in _outbox(desk)] == [f"ack:{t.number}",
                                                     f"ack:{in_scope.number}"]
        with desk.factory() as s:
            rows = s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
            notice, ack = (message_from_bytes(r.raw, policy=default) for r in rows)
        assert "サポート期間についてのご案内" in str(notice["Subject"])
        notice_body = notice.get_body().get_content()  # type: ignore[union-attr]
        assert "サポート期間が終了している" in notice_body and "一次回答" not in notice_body
        assert "11月25日(水) 17:30までに一次回答" in ack.get_body().get_content()  # type: ignore[union-attr]
    finally:
        desk.close()


def test_a_contact_of_the_companys_other_contract_is_flagged_with_the_hint(desk2: Desk) -> None:
    t = send(desk2, "kodama", jst(2026, 11, 26, 9, 40), number="2031-0007-0002")
    assert t.flag_names == ["unregistered_sender"] and t.contact is not None
    assert t.contact.name == "伊藤 健" and t.first_response_due is None
    [flag] = t.flags
    assert flag.detail == ("送信者は同じ会社の別の契約（2031-0006-0003）の窓口担当者です。"
                           "この契約には登録されていません。")
    assert _outbox(desk2) == []


def test_mail_naming_no_contract_takes_the_product_of_its_mailbox(desk2: Desk) -> None:
    stranger = ("見知らぬ 人", "someone@other.example.jp")
    to_crm = send(desk2, "sakura", jst(2026, 11, 24, 8, 0), number="0000", source="agcrm-mail",
                  sender=stranger)
    elsewhere = send(desk2, "sakura", jst(2026, 11, 24, 8, 0), number="0000", subject="別",
                     sender=stranger)
    assert (to_crm.product, elsewhere.product) == ("All Gather CRM", "ChatLuck")
    assert to_crm.contract_id is None and to_crm.first_response_due is None  # a stranger


def test_the_first_response_clock_of_an_accepted_ticket_is_its_products(desk2: Desk) -> None:
    t = send(desk2, "minato", jst(2026, 11, 24, 12, 0), sender=("佐藤 個人", "sato@home.example"))
    assert t.flag_names == ["unregistered_sender"] and t.first_response_due is None
    accept(desk2, t.number, "2031-0002-0007", jst(2026, 11, 24, 18, 0), register=True)
    with desk2.factory() as s:
        ticket = ticket_by_number(s, t.number)
        assert ticket is not None
        # Accepted after the day's close: the next business hours, All Gather CRM's 9:30.
        assert ticket.work_starts_at == jst(2026, 11, 25, 9, 30)
        assert ticket.first_response_due == jst(2026, 11, 25, 17, 30)
        assert ticket.received_at + timedelta(hours=6) == jst(2026, 11, 24, 18, 0)
