"""A ticket in the web desk: its thread, files, replies by mail, FAX and phone, notes,
assignment, status and merging — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message as MimeMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from sqlalchemy import select

from madoguchi.app import Desk
from madoguchi.ticketing.models import (
    Attachment,
    Channel,
    Direction,
    Flag,
    Message,
    OutboxMessage,
    TicketStatus,
)
from madoguchi.ticketing.outbox import OutboxSender
from tests.conftest import make_settings
from tests.smtp_server import SmtpTestServer
from tests.test_web_kit import (
    YAMADA,
    Staff,
    WebDesk,
    ingest_mail,
    make_ticket,
    open_web,
    png,
    ticket,
)

pytest_plugins = ["tests.test_web_kit"]


def _form_value(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, name
    return match.group(1)


def _thread(desk: Desk) -> str:
    first = ingest_mail(desk, subject="ログインできません", message_id="first@cust.example.jp",
                        body="サポートサービス番号: 2031-0001-0008\n\n"
                             "管理画面にログインできません。\n")
    again = ingest_mail(desk, subject=f"Re: [{first}] ログインできません",
                        message_id="second@cust.example.jp",
                        in_reply_to="first@cust.example.jp",
                        references=["first@cust.example.jp"],
                        body="追加情報です。\nエラー番号は E-1024 でした。\n")
    assert again == first
    return first


def test_a_ticket_shows_its_whole_thread_in_order_with_customer_contract_and_sla(
    webdesk: WebDesk, agent: Staff
) -> None:
    number = _thread(webdesk.desk)
    page = agent.get(f"/tickets/{number}").text
    assert page.index("管理画面にログインできません") < page.index("エラー番号は E-1024")
    assert "株式会社さくら商事" in page and "2031-0001-0008" in page
    assert "2026-04-01 〜 2027-03-31" in page and "期間内" in page
    assert "山田 太郎" in page and "yamada@sakura-shoji.example.jp" in page
    assert "一次回答期限" in page and "エスカレーション" in page
    assert page.count('class="msg dir-in"') == 2


def test_a_mail_reply_is_threaded_tagged_quoted_queued_and_recorded(
    webdesk: WebDesk, agent: Staff
) -> None:
    number = _thread(webdesk.desk)
    page = agent.get(f"/tickets/{number}").text
    key = _form_value(page, "idempotency_key")
    form = {
        "to": _form_value(page, "to"),
        "cc": "",
        "body": "山田様\n\nお問い合わせありがとうございます。\nパスワードを再設定してください。",
        "quote": "1",
        "reply_to": _form_value(page, "reply_to"),
        "idempotency_key": key,
        "then_status": "pending",
    }
    assert form["to"] == YAMADA[1]
    r = agent.post(f"/tickets/{number}/reply", form)
    assert r.status_code == 303
    assert "送信キューに入れました" in agent.get(r.headers["location"]).text
    # The same form sent twice (a double click) sends once.
    r = agent.post(f"/tickets/{number}/reply", form)
    assert "送信済み" in agent.get(r.headers["location"]).text

    with webdesk.desk.factory() as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "reply")).all()
        assert len(rows) == 1
        out = s.scalars(select(Message).where(Message.direction == Direction.OUT)).one()
        assert out.message_id == rows[0].message_id.strip("<>")
        assert out.author_id == webdesk.users["agent"]
    mail = message_from_bytes(rows[0].raw, policy=default_policy)
    assert mail["From"].addresses[0].addr_spec == webdesk.settings.desk_address
    assert mail["To"].addresses[0].addr_spec == YAMADA[1]
    assert mail["Subject"] == f"Re: [{number}] ログインできません"
    assert mail["In-Reply-To"] == "<second@cust.example.jp>"
    assert mail["References"] == "<first@cust.example.jp> <second@cust.example.jp>"
    body = mail.get_body().get_content()  # type: ignore[union-attr]
    assert "パスワードを再設定してください。" in body
    assert "> エラー番号は E-1024 でした。" in body and "担当: 佐藤 彩香" in body
    t = ticket(webdesk.desk, number)
    assert t.first_responded_at is not None and t.status == TicketStatus.PENDING
    page = agent.get(f"/tickets/{number}").text
    assert 'class="msg dir-out"' in page and "一次回答済" in page


@pytest.fixture
def smtp_webdesk(database_url: str, tmp_path: Path, smtp_server: SmtpTestServer,
                 quick_hashing: None) -> Iterator[WebDesk]:
    settings = make_settings(database_url, tmp_path, smtp=smtp_server.smtp_settings())
    desk = Desk.open(settings)
    yield open_web(settings, desk, tmp_path, send_outbox_after_reply=True)
    desk.close()


def test_a_reply_reaches_the_smtp_server_right_after_it_is_sent(
    smtp_webdesk: WebDesk, smtp_server: SmtpTestServer
) -> None:
    number = _thread(smtp_webdesk.desk)
    staff = smtp_webdesk.sign_in()
    page = staff.get(f"/tickets/{number}").text
    staff.post(f"/tickets/{number}/reply", {
        "to": YAMADA[1], "body": "確認いたします。", "quote": "1",
        "reply_to": _form_value(page, "reply_to"),
        "idempotency_key": _form_value(page, "idempotency_key"),
    })
    replies = [m for m in smtp_server.messages
               if f"Re: [{number}]" in str(message_from_bytes(m.raw, policy=default_policy)
                                           ["Subject"])]
    assert len(replies) == 1 and replies[0].rcpt_tos == (YAMADA[1],)
    received: MimeMessage = message_from_bytes(replies[0].raw, policy=default_policy)
    assert received["In-Reply-To"] == "<second@cust.example.jp>"
    # Nothing is left for the daemon: the outbox row is marked sent.
    report = OutboxSender(smtp_webdesk.settings, smtp_webdesk.desk.factory).send_due()
    assert report.sent == []


def test_a_reply_needs_a_valid_recipient_and_text(webdesk: WebDesk, agent: Staff) -> None:
    number = _thread(webdesk.desk)
    key = _form_value(agent.get(f"/tickets/{number}").text, "idempotency_key")
    for form, error in (
        ({"to": "not an address", "body": "x"}, "メールアドレスが正しくありません"),
        ({"to": YAMADA[1], "body": "  "}, "本文を入力してください"),
        ({"to": f"{YAMADA[1]}\r\nBcc: x@evil.example", "body": "x"}, "制御文字は使えません"),
    ):
        r = agent.post(f"/tickets/{number}/reply", {**form, "idempotency_key": key})
        assert error in agent.get(r.headers["location"]).text
    with webdesk.desk.factory() as s:
        assert s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "reply")).all() == []
    assert ticket(webdesk.desk, number).first_responded_at is None


def test_a_fax_reply_is_a_pdf_in_the_gateway_folder_and_in_the_thread(
    webdesk: WebDesk, agent: Staff
) -> None:
    number = _thread(webdesk.desk)
    r = agent.post(f"/tickets/{number}/fax", {
        "fax_number": "03-1234-5679", "to_name": "株式会社さくら商事",
        "body": "お問い合わせの件、以下の手順でご確認ください。\n" + "手順の説明です。" * 200,
    })
    assert "送信フォルダー" in agent.get(r.headers["location"]).text
    folder = webdesk.web.fax_outbound_dir
    pdfs, metas = sorted(folder.glob("*.pdf")), sorted(folder.glob("*.json"))
    assert len(pdfs) == 1 and len(metas) == 1 and not list(folder.glob(".*"))
    assert pdfs[0].read_bytes().startswith(b"%PDF") and pdfs[0].name.startswith(number)
    meta = json.loads(metas[0].read_text())
    assert meta["to"] == "03-1234-5679" and meta["document"] == pdfs[0].name
    with webdesk.desk.factory() as s:
        out = s.scalars(select(Message).where(Message.channel == Channel.FAX)).one()
        assert out.direction == Direction.OUT and out.recipients == ["03-1234-5679"]
        attachment = s.scalars(select(Attachment).where(Attachment.message_id == out.id)).one()
    download = agent.get(f"/attachments/{attachment.id}")
    assert download.content == pdfs[0].read_bytes()
    assert download.headers["content-disposition"].startswith("attachment;")
    assert ticket(webdesk.desk, number).first_responded_at is not None
    r = agent.post(f"/tickets/{number}/fax", {"fax_number": "abc", "body": "x"})
    assert "FAX番号が正しくありません" in agent.get(r.headers["location"]).text
    assert len(list(folder.glob("*.pdf"))) == 1


def test_a_phone_call_is_a_first_response_and_a_note_is_not(
    webdesk: WebDesk, agent: Staff
) -> None:
    noted, called = make_ticket(webdesk.desk), make_ticket(webdesk.desk)
    agent.post(f"/tickets/{noted}/note", {"text": "社内確認中。お客様には未連絡。"})
    t = ticket(webdesk.desk, noted)
    assert t.first_responded_at is None
    page = agent.get(f"/tickets/{noted}").text
    assert "社内確認中。お客様には未連絡。" in page and "社内メモ" in page
    agent.post(f"/tickets/{called}/phone", {"direction": "out", "phone": "03-1234-5678",
                                            "text": "お電話で手順をご案内した。"})
    assert ticket(webdesk.desk, called).first_responded_at is not None
    with webdesk.desk.factory() as s:
        assert s.scalars(select(OutboxMessage)).all() == []
        kinds = {(m.direction, m.channel) for m in s.scalars(
            select(Message).where(Message.author_id.is_not(None)))}
    assert kinds == {(Direction.NOTE, Channel.NOTE), (Direction.OUT, Channel.PHONE)}


def test_assign_and_change_status(webdesk: WebDesk, agent: Staff) -> None:
    number = make_ticket(webdesk.desk)
    agent.post(f"/tickets/{number}/assign", {"assignee": str(webdesk.users["boss"])})
    assert ticket(webdesk.desk, number).assignee_id == webdesk.users["boss"]
    agent.post(f"/tickets/{number}/assign", {"assignee": "me"})
    assert ticket(webdesk.desk, number).assignee_id == webdesk.users["agent"]
    r = agent.post(f"/tickets/{number}/assign", {"assignee": "999"})
    assert "担当者が見つかりません" in agent.get(r.headers["location"]).text
    agent.post(f"/tickets/{number}/status", {"status": "closed"})
    t = ticket(webdesk.desk, number)
    assert t.status == TicketStatus.CLOSED and t.closed_at is not None
    agent.post(f"/tickets/{number}/status", {"status": "open"})
    t = ticket(webdesk.desk, number)
    assert t.status == TicketStatus.OPEN and t.closed_at is None
    r = agent.post(f"/tickets/{number}/status", {"status": "deleted"})
    assert "ステータスが正しくありません" in agent.get(r.headers["location"]).text


def test_a_mistaken_new_ticket_is_merged_into_the_right_one(
    webdesk: WebDesk, agent: Staff
) -> None:
    right = make_ticket(webdesk.desk, subject="最初のお問い合わせ", text="最初の本文",
                        status=TicketStatus.CLOSED)
    mistaken = make_ticket(webdesk.desk, subject="続きのお問い合わせ", text="続きの本文")
    for target, error in ((mistaken, "同じチケット"), ("T-1999-000001", "見つかりません")):
        r = agent.post(f"/tickets/{mistaken}/merge", {"target": target})
        assert error in agent.get(r.headers["location"]).text
    r = agent.post(f"/tickets/{mistaken}/merge", {"target": right.lower()})
    assert r.headers["location"] == f"/tickets/{right}"
    page = agent.get(f"/tickets/{right}").text
    assert "最初の本文" in page and "続きの本文" in page
    assert f'統合元: <a href="/tickets/{mistaken}">' in page
    merged = ticket(webdesk.desk, mistaken)
    assert merged.status == TicketStatus.CLOSED and merged.merged_into_id is not None
    # The right ticket is worked again; the merged one only points at it.
    assert ticket(webdesk.desk, right).status == TicketStatus.OPEN
    page = agent.get(f"/tickets/{mistaken}").text
    assert f"{right}</a> に統合されました" in page
    assert f'action="/tickets/{mistaken}/reply"' not in page
    r = agent.post(f"/tickets/{mistaken}/note", {"text": "x"})
    assert "統合済み" in agent.get(r.headers["location"]).text


PAYLOAD = "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">"


def test_a_hostile_mail_is_shown_escaped_and_its_html_in_a_sandbox(
    webdesk: WebDesk, agent: Staff
) -> None:
    number = ingest_mail(
        webdesk.desk, subject=f"至急 {PAYLOAD}", body=f"本文 {PAYLOAD}",
        html=f"<p style=\"position:fixed;top:0\">HTML本文</p>{PAYLOAD}"
             "<img src=\"https://tracker.example/p.gif\"><a href=\"javascript:alert(1)\">x</a>",
        from_=("<b>悪意</b>", "stranger@evil.example"),
    )
    page = agent.get(f"/tickets/{number}").text
    assert "<script>window.pwned" not in page and "onerror=\"window" not in page
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page
    assert "&lt;b&gt;悪意&lt;/b&gt;" in page
    frame = re.search(r'<iframe src="(/messages/(\d+)/html)" sandbox ', page)
    assert frame, "the HTML part is framed, sandboxed without allow-scripts"
    r = agent.get(frame.group(1))
    assert "sandbox" in r.headers["content-security-policy"]
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert "script" not in r.text.lower() and "onerror" not in r.text.lower()
    assert "tracker.example" not in r.text and "javascript:" not in r.text
    assert "HTML本文" in r.text


def test_attachments_download_with_safe_names_and_page_images_show_inline(
    webdesk: WebDesk, agent: Staff
) -> None:
    number = ingest_mail(webdesk.desk, attachments=[
        ("請求書 4月分.pdf", "application/pdf", b"%PDF-1.4 fake"),
        ("../../evil.html", "text/html", b"<script>alert(1)</script>"),
    ])
    fax = make_ticket(webdesk.desk, channel=Channel.FAX, flags=(Flag.UNREADABLE_FAX,),
                      page=png())
    with webdesk.desk.factory() as s:
        files = {a.original_filename: a for a in s.scalars(select(Attachment))}
    page = agent.get(f"/tickets/{number}").text
    for a in (files["請求書 4月分.pdf"], files["../../evil.html"]):
        assert f'href="/attachments/{a.id}"' in page
        r = agent.get(f"/attachments/{a.id}")
        disposition = r.headers["content-disposition"]
        assert disposition.startswith("attachment; filename=\"")
        assert "/" not in disposition.split("filename=")[1].split(";")[0]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in r.headers["content-security-policy"]
        assert agent.get(f"/attachments/{a.id}/view").status_code == 404
    assert "filename*=UTF-8''" in agent.get(
        f"/attachments/{files['請求書 4月分.pdf'].id}").headers["content-disposition"]
    image = files[""]
    assert f'src="/attachments/{image.id}/view"' in agent.get(f"/tickets/{fax}").text
    r = agent.get(f"/attachments/{image.id}/view")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content.startswith(b"\x89PNG")


def test_the_ticket_page_shows_the_number_as_written_beside_the_contracts(
    webdesk: WebDesk, agent: Staff
) -> None:
    number = ingest_mail(webdesk.desk, subject="質問", message_id="wrong@cust.example.jp",
                         body="サポートサービス番号: 2031-0001-0009\n\n質問です。\n")
    page = agent.get(f"/tickets/{number}").text
    assert "<dt>サポート番号</dt><dd class=\"mono\">2031-0001-0008</dd>" in page
    assert "記載されたサポート番号" in page
    assert 'id="support-number-written">2031-0001-0009</dd>' in page
