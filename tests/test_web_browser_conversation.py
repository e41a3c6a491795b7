"""In Debian's headless Chromium: a customer's reply wakes a pending ticket, which reaches
the top of the queue marked お客様から返信あり (as tests/test_web_browser.py runs it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from madoguchi.app import Desk
from madoguchi.ingest.inbound import Inbound
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import Contract, OutboxMessage
from madoguchi.web_server import WebServer
from tests.browser_kit import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import make_settings
from tests.mailfactory import make_mail
from tests.test_web_browser import playwright_api
from tests.test_web_kit import PASSWORD, YAMADA, WebDesk, ingest_mail, make_ticket, open_web

# The system lane: whole processes, for minutes (tests/conftest.py).
pytestmark = pytest.mark.slow
pytest_plugins = ["tests.test_web_kit"]


@pytest.fixture
def running(sqlite_url: str, tmp_path: Path, quick_hashing: None
            ) -> Iterator[tuple[WebDesk, str, str, str]]:
    settings = make_settings(sqlite_url, tmp_path)
    desk = Desk.open(settings)
    wd = open_web(settings, desk, tmp_path)
    with transaction(desk.factory) as s:
        # The contract's own terms: its customers' replies are answered within an hour.
        s.scalars(select(Contract).where(Contract.support_number == "203100010008")).one() \
            .sla_override = {"next_response": {"calendar": "24x7", "policy": "business_hours",
                                               "hours": 1}}
    mine = ingest_mail(desk, subject="ログインできません", message_id="w1@sakura.example.jp")
    other = make_ticket(desk, subject="別件", due=datetime.now(UTC) + timedelta(hours=5))
    server = WebServer(settings, desk=desk, web=wd.web, host="127.0.0.1", port=0).start()
    try:
        yield wd, server.url, mine, other
    finally:
        server.stop()
        desk.close()


def _customer_replies(desk: Desk, number: str) -> None:
    with desk.factory() as s:
        ours = s.scalars(select(OutboxMessage.message_id).where(
            OutboxMessage.kind == "reply")).one()
    raw = make_mail(subject=f"Re: [{number}] ログインできません", from_=YAMADA, charset="utf-8",
                    body="まだログインできません。至急お願いします。", date=datetime.now(UTC),
                    message_id="w2@sakura.example.jp", in_reply_to=ours, references=[ours])
    assert desk.pipeline.ingest(Inbound(raw, "test", "ref")).ticket_number == number


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_a_customer_reply_wakes_a_pending_ticket_to_the_top_of_the_queue(
    running: tuple[WebDesk, str, str, str],
) -> None:
    wd, url, mine, other = running
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_context(locale="ja-JP", viewport={"width": 390, "height": 844}
                                   ).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/login")
        page.fill("#login", "agent")
        page.fill("#password", PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{url}/queue")

        # Answer the customer and put the ticket on hold (保留).
        page.goto(f"{url}/tickets/{mine}")
        page.fill("#reply-body", "山田様\n\nパスワードを再設定してお試しください。")
        page.select_option("#reply-then", "pending")
        page.click("form[action$='/reply'] button[type=submit]")
        page.wait_for_selector(".flash.ok")
        page.goto(f"{url}/queue")
        rows = page.locator("table.queue tbody tr")
        assert other in rows.nth(0).inner_text()  # the only deadline still open
        assert mine in rows.nth(1).inner_text() and "保留" in rows.nth(1).inner_text()

        _customer_replies(wd.desk, mine)
        page.reload()
        first = page.locator("table.queue tbody tr").nth(0)
        assert mine in first.inner_text()
        assert first.locator(".badge.state-customer_replied").inner_text() == "お客様から返信あり"
        assert "待ち" in first.locator(".waited").inner_text()
        assert first.locator(".badge.flag-urgent").count() == 1

        # The ticket tells what happened, a compact line in the thread.
        first.locator("td.number a").click()
        page.wait_for_url(f"{url}/tickets/{mine}")
        lines = page.locator(".history-line").all_inner_texts()
        assert any("保留 → お客様から返信あり" in line for line in lines), lines
        assert "次回回答期限" in page.inner_text("aside")
        assert errors == []
        browser.close()
