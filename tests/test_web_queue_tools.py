"""The queue's tools: saved views with counts, bulk actions, time left, assign to me,
the due-soon window per product, attachment previews, and the smaller fixes of issue 15."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select
from typer.testing import CliRunner

from madoguchi.app import Desk
from madoguchi.cli import app as cli_app
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import (
    Channel,
    Contact,
    ContactEmail,
    Flag,
    Ticket,
    TicketStatus,
)
from madoguchi.web.problems import problem_ja
from madoguchi.web.timeleft import time_left
from tests.conftest import make_settings
from tests.faxfactory import letter_pdf
from tests.test_web_kit import (
    SAKURA_NUMBER,
    Staff,
    WebDesk,
    ingest_mail,
    make_ticket,
    open_web,
    png,
    ticket,
)

pytest_plugins = ["tests.test_web_kit"]

_COUNT = re.compile(r'data-view="(\w+)">[^<]*<span class="count">(\d+)</span>')


def _counts(html: str) -> dict[str, int]:
    return {key: int(n) for key, n in _COUNT.findall(html)}


def _row(html: str, number: str) -> str:
    """The queue's row of one ticket."""
    before, after = html.split(f'value="{number}"', 1)
    return before.rsplit("<tr", 1)[1] + after.split("</tr>", 1)[0]


def _set(wd: WebDesk, number: str, **values: object) -> None:
    with transaction(wd.desk.factory) as s:
        t = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        for name, value in values.items():
            setattr(t, name, value)


# -- views and their counts --------------------------------------------------


def test_saved_views_count_mine_unassigned_due_today_waiting_triage_and_all_open(
    webdesk: WebDesk, agent: Staff
) -> None:
    now = datetime.now(UTC)
    me, boss = webdesk.users["agent"], webdesk.users["boss"]
    mine_late = make_ticket(webdesk.desk, due=now - timedelta(hours=1), assignee_id=me)
    make_ticket(webdesk.desk, due=now + timedelta(days=3), assignee_id=me,
                status=TicketStatus.PENDING)
    make_ticket(webdesk.desk, due=now + timedelta(days=3), assignee_id=boss)
    answered = make_ticket(webdesk.desk, due=now - timedelta(hours=2))
    _set(webdesk, answered, first_responded_at=now - timedelta(hours=3))
    make_ticket(webdesk.desk, due=None, channel=Channel.FAX, flags=(Flag.UNREADABLE_FAX,))
    make_ticket(webdesk.desk, due=now - timedelta(days=1), status=TicketStatus.CLOSED,
                assignee_id=me)
    page = agent.get("/queue").text
    assert _counts(page) == {"mine": 2, "unassigned": 2, "today": 1, "waiting": 4,
                             "triage": 1, "all": 5}
    # A view's list is its count.
    for key, query in (("mine", "assignee=me"), ("unassigned", "assignee=none"),
                       ("today", "due=today"), ("waiting", "status=open")):
        html = agent.get(f"/queue?{query}").text
        assert html.count("<tr class=\"sla-") == _counts(html)[key], key
        assert f'aria-current="page" data-view="{key}"' in html
    today = agent.get("/queue?due=today").text
    assert mine_late in today and answered not in today


def test_a_customers_mail_puts_a_pending_ticket_back_to_waiting_for_us(
    webdesk: WebDesk, agent: Staff
) -> None:
    number = ingest_mail(webdesk.desk, subject="ログインできません",
                         message_id="a@sakura.example.jp")
    _set(webdesk, number, status=TicketStatus.PENDING)
    assert number not in agent.get("/queue?status=open").text
    ingest_mail(webdesk.desk, subject=f"Re: [{number}] ログインできません",
                in_reply_to="a@sakura.example.jp", references=["a@sakura.example.jp"],
                message_id="b@sakura.example.jp", body="試しましたがだめでした。\n")
    assert ticket(webdesk.desk, number).status == TicketStatus.OPEN
    assert number in agent.get("/queue?status=open").text


# -- bulk actions --------------------------------------------------------------


def test_bulk_close_closes_each_ticket_and_names_the_one_it_refused(
    webdesk: WebDesk, agent: Staff
) -> None:
    due = datetime.now(UTC) + timedelta(days=1)
    numbers = [make_ticket(webdesk.desk, due=due) for _ in range(3)]
    merged = make_ticket(webdesk.desk, due=due)
    agent.post(f"/tickets/{merged}/merge", {"target": numbers[0]})
    r = agent.client.post("/queue/bulk", data={
        "csrf": agent.csrf, "action": "close", "ticket": [*numbers, merged],
        "back": "/queue?assignee=none",
    })
    assert r.status_code == 303 and r.headers["location"] == "/queue?assignee=none"
    assert all(ticket(webdesk.desk, n).status == TicketStatus.CLOSED for n in numbers)
    page = agent.get("/queue").text
    assert "3件を完了にしました。" in page
    assert f"1件は変更できませんでした: {merged}（このチケットは統合済みです" in page


def test_bulk_assign_and_status_go_through_the_single_ticket_rules(
    webdesk: WebDesk, agent: Staff
) -> None:
    due = datetime.now(UTC) + timedelta(days=1)
    a, b = make_ticket(webdesk.desk, due=due), make_ticket(webdesk.desk, due=due)
    agent.client.post("/queue/bulk", data={"csrf": agent.csrf, "action": "assign_me",
                                           "ticket": [a, b]})
    assert ticket(webdesk.desk, a).assignee_id == webdesk.users["agent"]
    agent.client.post("/queue/bulk", data={"csrf": agent.csrf, "action": "assign",
                                           "assignee": str(webdesk.users["boss"]),
                                           "ticket": [a, b]})
    assert ticket(webdesk.desk, b).assignee_id == webdesk.users["boss"]
    r = agent.client.post("/queue/bulk", data={"csrf": agent.csrf, "action": "assign",
                                               "assignee": "999999", "ticket": [a]})
    assert "担当者が見つかりません" in agent.get(r.headers["location"]).text
    assert ticket(webdesk.desk, a).assignee_id == webdesk.users["boss"]
    agent.client.post("/queue/bulk", data={"csrf": agent.csrf, "action": "status",
                                           "status": "pending", "ticket": [a, b]})
    assert ticket(webdesk.desk, a).status == TicketStatus.PENDING
    r = agent.client.post("/queue/bulk", data={"csrf": agent.csrf, "action": "status",
                                               "status": "bogus", "ticket": [a]})
    assert "ステータスが正しくありません" in agent.get(r.headers["location"]).text
    r = agent.client.post("/queue/bulk", data={"csrf": agent.csrf, "action": "close"})
    assert "チケットを選んでください" in agent.get(r.headers["location"]).text
    # Without a token nothing is done.
    r = agent.client.post("/queue/bulk", data={"action": "close", "ticket": [a]})
    assert r.status_code == 403 and ticket(webdesk.desk, a).status == TicketStatus.PENDING


def test_bulk_merge_moves_the_others_into_the_target_among_them(
    webdesk: WebDesk, agent: Staff
) -> None:
    due = datetime.now(UTC) + timedelta(days=1)
    target, x, y = (make_ticket(webdesk.desk, due=due) for _ in range(3))
    r = agent.client.post("/queue/bulk", data={"csrf": agent.csrf, "action": "merge",
                                               "target": "T-2026-999999", "ticket": [x, y]})
    refused = agent.get(r.headers["location"]).text
    assert "統合先のチケット T-2026-999999 が見つかりません" in refused
    r = agent.client.post("/queue/bulk", data={"csrf": agent.csrf, "action": "merge",
                                               "target": target, "ticket": [target, x, y]})
    assert "2件を統合しました。" in agent.get(r.headers["location"]).text
    with webdesk.desk.factory() as s:
        into = s.scalars(select(Ticket.id).where(Ticket.number == target)).one()
    assert ticket(webdesk.desk, x).merged_into_id == into
    assert ticket(webdesk.desk, target).status == TicketStatus.OPEN


def test_a_whole_page_of_tickets_can_be_ticked(webdesk: WebDesk, agent: Staff) -> None:
    number = make_ticket(webdesk.desk, due=datetime.now(UTC) + timedelta(days=1))
    unknown = [f"T-2026-9{i:05d}" for i in range(499)]
    r = agent.client.post("/queue/bulk", data={"csrf": agent.csrf, "action": "close",
                                               "ticket": [number, *unknown]})
    assert r.status_code == 303
    assert ticket(webdesk.desk, number).status == TicketStatus.CLOSED
    assert "499件は変更できませんでした" in agent.get("/queue").text


def test_a_back_address_outside_the_queue_is_not_followed(webdesk: WebDesk,
                                                          agent: Staff) -> None:
    number = make_ticket(webdesk.desk, due=datetime.now(UTC) + timedelta(days=1))
    for back in ("https://evil.example/queue", "//evil.example/queue", "/tickets/x"):
        r = agent.client.post("/queue/bulk", data={"csrf": agent.csrf, "only": number,
                                                   "back": back})
        assert r.headers["location"] == "/queue"


# -- assign to me, time left ---------------------------------------------------


def test_assign_to_me_from_a_queue_row_and_from_the_ticket(webdesk: WebDesk,
                                                           agent: Staff) -> None:
    due = datetime.now(UTC) + timedelta(days=1)
    row, page = make_ticket(webdesk.desk, due=due), make_ticket(webdesk.desk, due=due)
    html = agent.get("/queue").text
    assert f'name="only" value="{row}"' in html
    agent.client.post("/queue/bulk", data={"csrf": agent.csrf, "only": row,
                                           "ticket": [page]})  # ticked boxes do not count
    assert ticket(webdesk.desk, row).assignee_id == webdesk.users["agent"]
    assert ticket(webdesk.desk, page).assignee_id is None
    assert f'name="only" value="{row}"' not in agent.get("/queue").text
    assert 'id="assign-me"' in agent.get(f"/tickets/{page}").text
    agent.post(f"/tickets/{page}/assign", {"assignee": "me"})
    assert ticket(webdesk.desk, page).assignee_id == webdesk.users["agent"]
    assert 'id="assign-me"' not in agent.get(f"/tickets/{page}").text


def test_time_left_is_shown_beside_the_due_time(webdesk: WebDesk, agent: Staff) -> None:
    now = datetime.now(UTC)
    late = make_ticket(webdesk.desk, due=now - timedelta(hours=2, minutes=5))
    soon = make_ticket(webdesk.desk, due=now + timedelta(hours=3, minutes=30))
    html = agent.get("/queue").text
    assert "2時間超過" in _row(html, late) and "あと3時間" in _row(html, soon)
    assert "あと3時間" in agent.get(f"/tickets/{soon}").text


@pytest.mark.parametrize(("delta", "said"), [
    (timedelta(minutes=25), "あと25分"), (timedelta(seconds=20), "あと1分"),
    (timedelta(minutes=89), "あと89分"), (timedelta(hours=3, minutes=59), "あと3時間"),
    (timedelta(hours=47), "あと47時間"), (timedelta(days=2, hours=5), "あと2日"),
    (-timedelta(minutes=15), "15分超過"), (-timedelta(hours=2, minutes=30), "2時間超過"),
    (-timedelta(days=3), "3日超過"),
])
def test_time_left_words(delta: timedelta, said: str) -> None:
    now = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    assert time_left(now + delta, now) == said
    assert time_left(None, now) == ""


def test_the_due_soon_window_is_the_products_own(sqlite_url: str, tmp_path: Path,
                                                 quick_hashing: None) -> None:
    settings = make_settings(sqlite_url, tmp_path, products=[
        {"preset": "chatluck", "default": True, "due_soon_minutes": 240},
        {"preset": "agcrm"},
    ])
    desk = Desk.open(settings)
    try:
        wd = open_web(settings, desk, tmp_path)
        in_three_hours = datetime.now(UTC) + timedelta(hours=3)
        chatluck = make_ticket(desk, due=in_three_hours)
        agcrm = make_ticket(desk, due=in_three_hours)
        _set(wd, chatluck, product="ChatLuck")
        _set(wd, agcrm, product="All Gather CRM")
        html = wd.sign_in().get("/queue").text
        assert "期限間近" in _row(html, chatluck)
        assert "期限間近" not in _row(html, agcrm)  # [web]'s 60 minutes
    finally:
        desk.close()


# -- the ticket page: previews, OCR text folded, actions near the top ---------------


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (1600, 1200), (200, 30, 30)).save(buf, format="JPEG")
    return buf.getvalue()


def test_images_and_pdfs_are_previewed_as_pngs_the_desk_drew(webdesk: WebDesk,
                                                             agent: Staff) -> None:
    number = ingest_mail(webdesk.desk, subject="画面の写真です", attachments=[
        ("screen.jpg", "image/jpeg", _jpeg()),
        ("manual.pdf", "application/pdf", letter_pdf(["操作手順書", "1. ログインする"])),
        ("broken.pdf", "application/pdf", b"%PDF-1.4 not really"),
        ("notes.txt", "text/plain", "メモ".encode()),
    ])
    html = agent.get(f"/tickets/{number}").text
    previews = re.findall(r'<img src="(/attachments/\d+/preview)" alt="([^"]+) のプレビュー', html)
    assert [alt for _, alt in previews] == ["screen.jpg", "manual.pdf", "broken.pdf"]
    for url, name in previews:
        r = agent.get(url)
        if name == "broken.pdf":
            assert r.status_code == 404 and "プレビューを作成できません" in r.text
            continue
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert "sandbox" in r.headers["content-security-policy"]
        image = Image.open(io.BytesIO(r.content))
        assert image.format == "PNG" and image.width <= 960
        if name == "screen.jpg":
            assert image.getpixel((10, 10))[0] > 150  # the photo's red, drawn again
        else:
            assert image.height > image.width  # an A4 page, upright
        assert agent.get(url).content == r.content  # the second time from the cache


def test_a_fax_pages_ocr_text_is_folded_and_the_actions_are_linked_from_the_top(
    webdesk: WebDesk, agent: Staff
) -> None:
    number = make_ticket(webdesk.desk, channel=Channel.FAX, page=png(),
                         text="\n".join(f"{i}行目" for i in range(40)))
    html = agent.get(f"/tickets/{number}").text
    assert '<details class="ocr-text">' in html and "OCRテキスト（40行）" in html
    head = html.split('class="thread"')[0]
    for anchor in ('href="#reply"', 'href="#note"', 'href="#actions"'):
        assert anchor in head
    assert 'id="actions"' in html and 'id="note"' in html and 'id="reply"' in html


# -- the smaller points -----------------------------------------------------------


def test_the_channel_filter_offers_only_channels_a_ticket_can_have(
    webdesk: WebDesk, agent: Staff
) -> None:
    select_html = agent.get("/queue").text.split('name="channel"')[1].split("</select>")[0]
    assert re.findall(r'<option value="(\w+)"', select_html) == ["email", "fax", "phone"]


def test_the_desk_has_a_favicon(webdesk: WebDesk, agent: Staff) -> None:
    assert 'rel="icon" href="/static/favicon.svg"' in agent.get("/queue").text
    r = webdesk.anonymous().get("/static/favicon.svg")
    assert r.status_code == 200 and r.text.startswith("<svg")


def test_web_help_names_the_configuration_keys() -> None:
    out = CliRunner().invoke(cli_app, ["web", "--help"], env={"COLUMNS": "200"}).output
    assert "default: web.host of the configuration" in out
    assert "default: web.port of the configuration" in out
    assert "(default:  " not in out


@pytest.mark.parametrize(("english", "japanese"), [
    ("no support service number found", "サポートサービス番号が見つかりません"),
    ("page 2: the QR code's number fails its check digit",
     "2ページ目: QRコードの番号のチェックディジットが合いません"),
    ("page 1: the support number boxes cannot be read (read 11 digits, not 12)",
     "1ページ目: サポートサービス番号の記入欄を読み取れません（11桁しか読めません（12桁必要））"),
    ("page 1: 203100010009 fails its check digit",
     "1ページ目: 203100010009 はチェックディジットが合いません"),
    ("pages carry different support numbers: 203100010008, 203100020007",
     "ページによってサポートサービス番号が異なります: 203100010008, 203100020007"),
    ("the form's support number boxes are empty", "依頼書のサポートサービス番号の記入欄が空です"),
    ("something new", "読み取りの問題（something new）"),
])
def test_the_readers_problems_in_japanese(english: str, japanese: str) -> None:
    assert problem_ja(english) == japanese


def test_a_contact_registered_from_triage_is_named_never_by_the_address(
    webdesk: WebDesk, agent: Staff
) -> None:
    address = "taro.personal@freemail.example.com"
    number = ingest_mail(webdesk.desk, from_=address, subject="個人アドレスから")
    section = agent.get("/triage").text.split(f'id="triage-{number}"')[1]
    assert 'name="contact_name" value=""' in section
    r = agent.post(f"/tickets/{number}/accept", {"support_number": SAKURA_NUMBER,
                                                 "register_sender": "1", "back": "triage"})
    assert r.status_code == 400 and "氏名を入力してください" in r.text
    assert ticket(webdesk.desk, number).flag_names == ["unregistered_sender"]
    agent.post(f"/tickets/{number}/accept", {"support_number": SAKURA_NUMBER,
                                             "register_sender": "1", "back": "triage",
                                             "contact_name": " 山田  花子 "})
    with webdesk.desk.factory() as s:
        contact = s.scalars(select(Contact).join(ContactEmail)
                            .where(ContactEmail.email == address)).one()
        assert contact.name == "山田 花子"
    # With a display name in From, that is the name offered (and taken when left as it is).
    named = ingest_mail(webdesk.desk, from_=("高橋 花子", "hanako@other.example.jp"))
    section = agent.get("/triage").text.split(f'id="triage-{named}"')[1]
    assert 'name="contact_name" value="高橋 花子"' in section

