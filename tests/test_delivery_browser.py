"""Delivery and drafts end to end in Debian's headless Chromium (Playwright, no download):
a refused reply shown on its message and sent again from the outbox page, Back + send
again sending once, and a draft that outlives its session."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.outbox import OutboxSender
from madoguchi.ticketing.security_models import WebSession
from tests.browser_kit import chromium, desk_page, served_web, sign_in
from tests.conftest import make_settings
from tests.smtp_server import SmtpTestServer
from tests.test_web_kit import WebDesk, ingest_mail

pytestmark = pytest.mark.slow


class Running:
    def __init__(self, wd: WebDesk, url: str, number: str) -> None:
        self.wd, self.url, self.number = wd, url, number


@pytest.fixture
def running(sqlite_url: str, tmp_path: Path, smtp_server: SmtpTestServer) -> Iterator[Running]:
    settings = make_settings(sqlite_url, tmp_path, smtp=smtp_server.smtp_settings())
    with served_web(settings, tmp_path, send_outbox_after_reply=True) as (wd, url):
        number = ingest_mail(wd.desk, subject="ログインできません",
                             message_id="first@sakura.example.jp")
        OutboxSender(settings, wd.desk.factory).send_due()  # the acknowledgement goes
        yield Running(wd, url, number)


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def _replies(server: SmtpTestServer, number: str) -> list[Any]:
    found = []
    for received in server.messages:
        mail = message_from_bytes(received.raw, policy=default_policy)
        if str(mail["Subject"]).startswith(f"Re: [{number}]"):
            found.append(mail)
    return found


def test_a_refused_reply_is_shown_failed_and_sent_again_from_the_outbox_page(
    running: Running, browser: Any, smtp_server: SmtpTestServer
) -> None:
    url, number = running.url, running.number
    smtp_server.refuse(550)
    agent = browser.new_context(locale="ja-JP").new_page()
    sign_in(agent, url, "agent", then=f"/tickets/{number}")
    agent.fill("#reply-body", "山田様\n\nパスワードの再設定をお試しください。")
    agent.click("#reply-form button[type=submit]")
    agent.wait_for_selector(".flash.ok")
    assert "まだ送信されていません" in agent.inner_text(".flash.ok")
    # Sent right after the reply (send_outbox_after_reply) and refused: shown on the message.
    for _ in range(50):
        agent.reload()
        if "送信失敗" in agent.inner_text("article.msg.dir-out"):
            break
        time.sleep(0.2)
    state = agent.inner_text("article.msg.dir-out .delivery")
    assert "送信状況: 送信失敗" in state and "550" in state
    assert agent.locator(".ticket-head .badge.flag-undelivered").count() == 1

    boss = browser.new_context(locale="ja-JP", viewport={"width": 390, "height": 800}).new_page()
    sign_in(boss, url, "boss", then="/queue")
    assert boss.locator("table.queue .badge.flag-undelivered").count() == 1
    boss.click("nav >> text=送信状況")
    boss.wait_for_url(f"{url}/outbox")
    boss.select_option("select[name=state]", "failed")
    boss.click("form.filters button[type=submit]")
    boss.wait_for_url("**/outbox?state=failed")
    smtp_server.accept()
    row = boss.locator("table.outbox tbody tr", has_text=number).filter(has_text="返信")
    row.locator("button", has_text="再送").click()
    boss.wait_for_selector(".flash.ok")
    for _ in range(50):
        if _replies(smtp_server, number):
            break
        time.sleep(0.2)
    assert len(_replies(smtp_server, number)) == 1
    agent.reload()
    assert "送信状況: 送信済み" in agent.inner_text("article.msg.dir-out .delivery")
    assert agent.locator(".ticket-head .badge.flag-undelivered").count() == 0


def test_back_and_send_again_sends_once(running: Running, browser: Any,
                                        smtp_server: SmtpTestServer) -> None:
    url, number = running.url, running.number
    page, errors = desk_page(browser)
    sign_in(page, url, "agent", then=f"/tickets/{number}")
    text = "山田様\n\n設定を確認いたしました。"
    page.fill("#reply-body", text)
    page.click("#reply-form button[type=submit]")
    page.wait_for_selector(".flash.ok")
    page.go_back()
    page.wait_for_selector("#reply-body")
    if page.input_value("#reply-body") != text:  # the browser may or may not restore it
        page.fill("#reply-body", text)
    page.click("#reply-form button[type=submit]")
    page.wait_for_url(re.compile(r"/tickets/[^#]+#m[0-9]+$"))
    page.wait_for_load_state()
    time.sleep(1.5)  # what the outbox would send after a second reply
    assert len(_replies(smtp_server, number)) == 1
    assert page.locator("article.msg.dir-out").count() == 1
    assert errors == []


def test_a_draft_outlives_its_session_and_comes_back_after_signing_in(
    running: Running, browser: Any, smtp_server: SmtpTestServer
) -> None:
    url, number, desk = running.url, running.number, running.wd.desk
    context = browser.new_context(locale="ja-JP")
    page = context.new_page()
    sign_in(page, url, "agent", then=f"/tickets/{number}")
    page.type("#reply-body", "お問い合わせの件、")
    page.wait_for_selector("#draft-status >> text=下書きを保存しました")

    with transaction(desk.factory) as session:  # the session runs out while typing
        session.execute(update(WebSession).values(
            last_seen_at=datetime.now(UTC) - timedelta(days=2)))
    page.type("#reply-body", "確認いたします。")
    page.wait_for_selector("#draft-status.error >> text=ログインの有効期限が切れました")
    assert page.input_value("#reply-body") == "お問い合わせの件、確認いたします。"
    page.click("#reply-form button[type=submit]")  # not posted into the ended session
    time.sleep(0.5)
    assert page.url.endswith(f"/tickets/{number}") and _replies(smtp_server, number) == []
    assert page.input_value("#reply-body") == "お問い合わせの件、確認いたします。"

    # Signed in again in another tab: this one saves what it kept.
    other = context.new_page()
    sign_in(other, url, "agent", then="/queue")
    other.close()
    page.bring_to_front()
    page.evaluate("window.dispatchEvent(new Event('focus'))")
    page.wait_for_selector("#draft-status:not(.error) >> text=下書きを保存しました",
                           timeout=15000)

    # A new sign-in in a fresh browser brings the whole draft back.
    fresh = browser.new_context(locale="ja-JP").new_page()
    sign_in(fresh, url, "agent", then=f"/tickets/{number}")
    assert fresh.input_value("#reply-body") == "お問い合わせの件、確認いたします。"
    assert "下書きを復元しました" in fresh.inner_text("#draft-status")
