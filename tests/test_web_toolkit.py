"""The agent's toolkit through the web desk: text modules and macros, signatures as sent,
calls either way, tickets opened from a call, priority, tags and subject (both databases)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from madoguchi.ticketing.db import transaction, upgrade
from madoguchi.ticketing.models import (
    Channel,
    Contract,
    Direction,
    Message,
    OutboxMessage,
    Ticket,
    TicketStatus,
)
from madoguchi.ticketing.privacy import anonymise_messages
from madoguchi.ticketing.text_modules import DEFAULTS
from madoguchi.ticketing.toolkit_models import PhoneCall, TextModule
from madoguchi.ticketing.vocabulary import ConversationState
from tests.postgres import PostgresDatabases
from tests.test_web_kit import (
    SAKURA_NUMBER,
    Staff,
    WebDesk,
    ingest_mail,
    make_ticket,
    ticket,
)

pytest_plugins = ["tests.test_web_kit"]

_KEY = re.compile(r'name="idempotency_key" value="([0-9a-f]{32})"')
_SIGNATURE = re.compile(r'name="signature" value="([^"]*)"')


@pytest.fixture(autouse=True)
def shipped_modules(webdesk: WebDesk) -> None:
    """The modules migration 0011 ships: the PostgreSQL test database is emptied between
    tests, its seeded rows too (``test_the_migration_seeds_the_shipped_modules`` checks them)."""
    with transaction(webdesk.desk.factory) as s:
        if s.scalar(select(TextModule.id).limit(1)) is None:
            s.add_all(TextModule(title=t, body=b, product="", set_status=st, set_assignee=a,
                                 updated_at=datetime.now(UTC)) for t, b, st, a in DEFAULTS)


def _seeded(url: str) -> list[str]:
    upgrade(url)
    engine = create_engine(url)
    with Session(engine) as s:
        titles = list(s.scalars(select(TextModule.title).order_by(TextModule.id)))
    engine.dispose()
    return titles


@pytest.mark.integration
def test_the_migration_seeds_the_shipped_modules(tmp_path: Path,
                                                 postgres_databases: PostgresDatabases) -> None:
    shipped = [t for t, _b, _s, _a in DEFAULTS]
    assert _seeded(f"sqlite:///{tmp_path / 'seed.db'}") == shipped
    assert _seeded(postgres_databases.fresh_database()) == shipped
    assert "追加情報のお願い" in shipped and "お問い合わせへのお礼" in shipped


def _option(page: str, title: str) -> tuple[int, str]:
    """The id and filled text of the text module ``title`` in the ticket page's list."""
    for match in re.finditer(r'<li role="option" id="tm-(\d+)" data-id="\d+" data-text="([^"]*)"'
                             r'[^>]*>([^<]*)', page):
        if match.group(3).strip() == title:
            return int(match.group(1)), html.unescape(match.group(2))
    raise AssertionError(f"no text module {title} on the page")


def _reply_form(page: str) -> dict[str, str]:
    key, signature = _KEY.search(page), _SIGNATURE.search(page)
    assert key and signature
    return {"idempotency_key": key.group(1), "signature": html.unescape(signature.group(1)),
            "to": "yamada@sakura-shoji.example.jp", "cc": ""}


def _sent_text(webdesk: WebDesk, number: str) -> str:
    with webdesk.desk.factory() as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "reply")).all()
        mails = [message_from_bytes(r.raw, policy=default_policy) for r in rows]
    texts = [m.get_body(("plain",)).get_content() for m in mails  # type: ignore[union-attr]
             if number in str(m["Subject"])]
    assert len(texts) == 1, texts
    return str(texts[0]).replace("\r\n", "\n")


def test_the_shipped_text_modules_come_filled_in_for_the_ticket(webdesk: WebDesk,
                                                                agent: Staff) -> None:
    number = ingest_mail(webdesk.desk, subject="ログインできません")
    page = agent.get(f"/tickets/{number}").text
    for title in ("お問い合わせへのお礼", "調査中のご連絡", "解決のご確認", "対象外のご案内",
                  "追加情報のお願い"):
        _option(page, title)
    _id, thanks = _option(page, "お問い合わせへのお礼")
    assert thanks.startswith("株式会社さくら商事\n山田 太郎 様\n\nいつもお世話になっております。")
    assert f"受付番号 {number} にて承りました" in thanks
    assert "サポート窓口の佐藤 彩香でございます" in thanks
    due = ticket(webdesk.desk, number).first_response_due
    assert due is not None and f"{due.astimezone(webdesk.settings.tz).day}日" in thanks
    assert "{" not in thanks


def test_the_reply_is_sent_with_the_signature_the_box_showed(webdesk: WebDesk, agent: Staff,
                                                            boss: Staff) -> None:
    number = ingest_mail(webdesk.desk, subject="ログインできません")
    page = agent.get(f"/tickets/{number}").text
    form = _reply_form(page)
    assert form["signature"].startswith(f"--\n受付番号：{number}\n")
    assert "担当: 佐藤 彩香" in form["signature"]
    # A supervisor rewrites the signature while the agent's page is open.
    r = boss.post("/signatures", {"product": "",
                                  "text": "さくらサポートデスク\n{担当者名}\nTEL 045-000-0000"})
    assert r.status_code == 303
    stale = agent.post(f"/tickets/{number}/reply", {**form, "body": "ご確認ください。"})
    assert stale.status_code == 303
    assert "署名が更新されました" in agent.get(f"/tickets/{number}").text
    with webdesk.desk.factory() as s:
        assert s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "reply")).all() == []
    fresh = _reply_form(agent.get(f"/tickets/{number}").text)
    assert fresh["signature"] == (f"--\n受付番号：{number}\n"
                                  "さくらサポートデスク\n佐藤 彩香\nTEL 045-000-0000")
    agent.post(f"/tickets/{number}/reply", {**fresh, "body": "ご確認ください。"})
    sent = _sent_text(webdesk, number)
    assert sent.startswith("ご確認ください。\n\n" + fresh["signature"] + "\n")


def test_a_macro_sets_status_and_assignee_when_its_reply_is_sent(webdesk: WebDesk,
                                                                 agent: Staff) -> None:
    thanked = ingest_mail(webdesk.desk, subject="ログインできません")
    page = agent.get(f"/tickets/{thanked}").text
    module, text = _option(page, "お問い合わせへのお礼")
    agent.post(f"/tickets/{thanked}/reply", {**_reply_form(page), "body": text,
                                             "macro": str(module)})
    t = ticket(webdesk.desk, thanked)
    # The reply answered the customer (their turn now); the macro took the ticket.
    assert t.assignee_id == webdesk.users["agent"] and t.state is ConversationState.WAITING
    declined = ingest_mail(webdesk.desk, subject="別製品について")
    page = agent.get(f"/tickets/{declined}").text
    module, text = _option(page, "対象外のご案内")
    agent.post(f"/tickets/{declined}/reply", {**_reply_form(page), "body": text,
                                              "macro": str(module)})
    assert ticket(webdesk.desk, declined).status == TicketStatus.CLOSED
    assert "サポートサービスの対象外" in _sent_text(webdesk, declined)


def test_supervisors_manage_text_modules_and_agents_only_read_them(webdesk: WebDesk,
                                                                  agent: Staff,
                                                                  boss: Staff) -> None:
    new = {"title": "再起動のお願い", "body": "{お客様名}\n\nサーバーの再起動をお願いいたします。",
           "product": "", "set_status": "pending", "set_assignee": ""}
    assert agent.post("/text-modules/save", new).status_code == 403
    bad = boss.post("/text-modules/save", {**new, "body": "{お客さま名} 再起動を"})
    assert bad.status_code == 400 and "{お客さま名}" in bad.text
    assert boss.post("/text-modules/save", new).status_code == 303
    with webdesk.desk.factory() as s:
        module = s.scalars(select(TextModule).where(TextModule.title == "再起動のお願い")).one()
    clash = boss.post("/text-modules/save", {**new, "title": "解決のご確認",
                                             "id": str(module.id)})
    assert clash.status_code == 400 and "すでにあります" in clash.text
    boss.post("/text-modules/save", {**new, "id": str(module.id), "body": "再起動をお願いします。"})
    assert "再起動をお願いします。" in agent.get("/text-modules").text
    assert agent.post(f"/text-modules/{module.id}/delete").status_code == 403
    boss.post(f"/text-modules/{module.id}/delete")
    with webdesk.desk.factory() as s:
        assert s.get(TextModule, module.id) is None


def test_a_caller_is_found_by_number_or_name_and_gets_a_ticket_due_as_mail(
    webdesk: WebDesk, agent: Staff
) -> None:
    for query in ("0312345678", "03-1234-5678", "５６７８", "山田", "山田 太郎"):
        page = agent.get("/phone", params={"q": query}).text
        assert "株式会社さくら商事 山田 太郎 様" in page, query
    assert "山田 太郎" not in agent.get("/phone", params={"q": "0000000"}).text
    with webdesk.desk.factory() as s:
        contract = s.scalars(select(Contract).where(
            Contract.support_number == SAKURA_NUMBER.replace("-", ""))).one()
        contact_id = contract.contacts[0].id
    before = datetime.now(UTC)
    r = agent.post("/phone/tickets", {"contact": str(contact_id), "contract": str(contract.id),
                                      "direction": "in", "party": "山田 太郎",
                                      "phone": "03-1234-5678", "minutes": "5",
                                      "subject": "印刷できない", "text": "帳票の印刷で止まる。"})
    assert r.status_code == 303 and "/tickets/T-" in r.headers["location"]
    number = r.headers["location"].rsplit("/", 1)[1]
    with webdesk.desk.factory() as s:
        t = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        assert (t.channel, t.subject, t.support_number) == (
            Channel.PHONE, "印刷できない", contract.support_number)
        assert t.flag_names == [] and t.first_responded_at is None
        expected = webdesk.desk.deadlines.first_response(t.received_at, t.contract)
        assert before <= t.received_at and t.first_response_due == expected.due_at
        (m,) = t.messages
        assert (m.direction, m.sender, m.recipients) == (Direction.IN, "03-1234-5678", [])
        call = s.get_one(PhoneCall, m.id)
        assert (call.direction, call.party, call.duration_seconds) == ("in", "山田 太郎", 300)
    assert "着信（お客様から）・相手: 山田 太郎・03-1234-5678・5分" in agent.get(
        f"/tickets/{number}").text


def test_calls_are_logged_either_way_and_bad_input_writes_nothing(webdesk: WebDesk,
                                                                 agent: Staff) -> None:
    number = make_ticket(webdesk.desk)
    call = {"party": "山田 太郎", "phone": "03-1234-5678", "text": "手順をご案内した。"}
    agent.post(f"/tickets/{number}/phone", {**call, "direction": "in", "minutes": "2.5"})
    agent.post(f"/tickets/{number}/phone", {**call, "direction": "out"})
    for bad in ({"direction": "sideways"}, {"direction": "in", "minutes": "五分"},
                {"direction": "in", "minutes": "-1"}, {"direction": "in", "text": " "}):
        agent.post(f"/tickets/{number}/phone", {**call, **bad})
    with webdesk.desk.factory() as s:
        rows = s.execute(select(Message, PhoneCall).join(PhoneCall)
                         .order_by(Message.id)).all()
        seen = [(m.direction, m.sender, m.recipients, c.direction, c.duration_seconds)
                for m, c in rows]
    assert seen == [(Direction.IN, "03-1234-5678", [], "in", 150),
                    (Direction.OUT, "", ["03-1234-5678"], "out", None)]
    assert ticket(webdesk.desk, number).first_responded_at is not None


def test_priority_tags_and_subject_are_edited_and_priority_shows_in_the_queue(
    webdesk: WebDesk, agent: Staff
) -> None:
    number = make_ticket(webdesk.desk, subject="FAXでのお問い合わせ（1枚）", channel=Channel.FAX)
    form = {"subject": "ライセンスキーの再発行", "priority": "urgent", "tag": "ライセンス",
            "free_tags": "サーバー移行、至急対応"}
    assert agent.post(f"/tickets/{number}/fields", form).status_code == 303
    t = ticket(webdesk.desk, number)
    assert (t.subject, t.priority, t.tags) == (
        "ライセンスキーの再発行", "urgent", ["ライセンス", "サーバー移行", "至急対応"])
    page = agent.get(f"/tickets/{number}").text
    assert "件名を変更しました（旧: FAXでのお問い合わせ（1枚））" in page
    row = agent.get("/queue").text
    assert re.search(r'priority-urgent">至急</span><a href="/tickets/' + number, row)
    agent.post(f"/tickets/{number}/fields", {**form, "priority": "最高"})
    agent.post(f"/tickets/{number}/fields", {**form, "subject": "  "})
    assert "優先度が正しくありません" in agent.get(f"/tickets/{number}").text
    t = ticket(webdesk.desk, number)
    assert (t.subject, t.priority) == ("ライセンスキーの再発行", "urgent")


def test_anonymising_a_call_forgets_who_called_and_from_which_number(webdesk: WebDesk,
                                                                     agent: Staff) -> None:
    number = make_ticket(webdesk.desk)
    agent.post(f"/tickets/{number}/phone", {"direction": "in", "party": "山田 太郎",
                                            "phone": "03-1234-5678", "text": "お電話あり。"})
    with transaction(webdesk.desk.factory) as s:
        t = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        anonymise_messages(s, t.messages)
    with webdesk.desk.factory() as s:
        (call,) = s.scalars(select(PhoneCall)).all()
        assert (call.party, call.number, call.direction) == ("", "", "in")
