"""Working together, in Debian's headless Chromium: two agents on one ticket, and the queue
redrawn when mail arrives through the pipeline, with no reload.

A real uvicorn server on a loopback port (SQLite: the change feed is the
polled table), two browser contexts signed in as two members of staff, the
page's own CSP (``connect-src`` falls back to ``default-src 'self'``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from madoguchi.app import Desk
from madoguchi.ticketing.models import OutboxMessage
from madoguchi.web_server import WebServer
from tests.browser_kit import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import make_settings
from tests.test_web_kit import PASSWORD, WebDesk, ingest_mail, open_web

pytestmark = pytest.mark.slow
pytest_plugins = ["tests.test_web_kit"]

playwright_api = pytest.importorskip("playwright.sync_api")


class Served:
    def __init__(self, wd: WebDesk, url: str, number: str) -> None:
        self.wd, self.url, self.number = wd, url, number


@pytest.fixture
def served(sqlite_url: str, tmp_path: Path, quick_hashing: None) -> Iterator[Served]:
    settings = make_settings(sqlite_url, tmp_path)
    desk = Desk.open(settings)
    wd = open_web(settings, desk, tmp_path)
    number = ingest_mail(desk, subject="ログインできません", message_id="first@sakura.example.jp")
    ingest_mail(desk, subject="請求書の再発行", message_id="other@sakura.example.jp")
    server = WebServer(settings, desk=desk, web=wd.web, host="127.0.0.1", port=0).start()
    try:
        yield Served(wd, server.url, number)
    finally:
        server.stop()
        desk.close()


def _sign_in(browser: object, url: str, login: str, problems: list[str]) -> object:
    context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.on("pageerror", lambda e: problems.append(f"{login}: {e}"))
    # Script errors and CSP refusals (the 409 of a stopped send is no problem, nor is
    # the favicon's 404).
    page.on("console", lambda m: problems.append(f"{login}: {m.text}")
            if m.type == "error" and "Failed to load resource" not in m.text else None)
    # A draft save cut short by the form's own submit is no loss: the form carries the text.
    page.on("requestfailed", lambda r: problems.append(f"{login}: {r.url} {r.failure}")
            if "/live/" not in r.url and not r.url.endswith("/draft") else None)
    page.goto(f"{url}/login")
    page.fill("#login", login)
    page.fill("#password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{url}/queue")
    return page


def _replies(wd: WebDesk) -> int:
    with wd.desk.factory() as db:
        return db.scalar(select(func.count()).select_from(OutboxMessage)
                         .where(OutboxMessage.kind == "reply")) or 0


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_two_agents_on_one_ticket_see_each_other_and_the_second_send_is_stopped(
    served: Served
) -> None:
    url, number = served.url, served.number
    problems: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        agent = _sign_in(browser, url, "agent", problems)
        boss = _sign_in(browser, url, "boss", problems)
        agent.goto(f"{url}/tickets/{number}")  # type: ignore[attr-defined]
        boss.goto(f"{url}/tickets/{number}")  # type: ignore[attr-defined]

        # Each sees the other, without reloading.
        agent.wait_for_selector("#presence:has-text('鈴木 部長 が表示中')")  # type: ignore[attr-defined]
        boss.wait_for_selector("#presence:has-text('佐藤 彩香 が表示中')")  # type: ignore[attr-defined]
        agent.fill("#reply-body", "山田様\n\n再起動をお試しください。")  # type: ignore[attr-defined]
        agent.type("#reply-body", "。")  # type: ignore[attr-defined]
        boss.wait_for_selector("#presence:has-text('佐藤 彩香 が返信を入力中')")  # type: ignore[attr-defined]

        # The boss answers first; the agent's page is told so, still unsent.
        boss.fill("#reply-body", "山田様\n\nパスワードを再設定しました。")  # type: ignore[attr-defined]
        boss.click("form[action$='/reply'] button[type=submit]")  # type: ignore[attr-defined]
        boss.wait_for_selector(".flash.ok")  # type: ignore[attr-defined]
        notice = agent.locator("#live-notice")  # type: ignore[attr-defined]
        notice.wait_for(state="visible")
        assert "メールでの返信（鈴木 部長" in notice.inner_text()
        assert "パスワードを再設定しました。" in notice.inner_text()

        # The agent sends anyway: stopped, told what changed, the text still there.
        agent.click("form[action$='/reply'] button[type=submit]")  # type: ignore[attr-defined]
        stale = agent.locator("#stale")  # type: ignore[attr-defined]
        stale.wait_for()
        assert "画面を開いた後に更新されています" in stale.inner_text()
        assert "パスワードを再設定しました。" in stale.inner_text()
        assert agent.input_value("#reply-body") == "山田様\n\n再起動をお試しください。。"  # type: ignore[attr-defined]
        assert _replies(served.wd) == 1
        browser.close()
    assert problems == []


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_the_queue_shows_new_mail_without_a_reload(served: Served) -> None:
    problems: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = _sign_in(browser, served.url, "agent", problems)
        rows = page.locator("table.queue tbody tr")  # type: ignore[attr-defined]
        assert rows.count() == 2
        page.evaluate("window.stillTheSamePage = true")  # type: ignore[attr-defined]

        new = ingest_mail(served.wd.desk, subject="ライセンスキーの再発行のお願い",
                          message_id="new@sakura.example.jp")

        page.wait_for_selector(f"td.number >> text={new}", timeout=15_000)  # type: ignore[attr-defined]
        assert rows.count() == 3
        assert page.evaluate("window.stillTheSamePage") is True  # type: ignore[attr-defined]
        assert page.locator("#live-notice").is_hidden()  # type: ignore[attr-defined]
        browser.close()
    assert problems == []
