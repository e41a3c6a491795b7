"""The agent's toolkit in Debian's headless Chromium: a text module inserted by keyboard
with its placeholders filled, and a ticket opened from a call found by phone number.

A real uvicorn server on a loopback port over a migrated SQLite desk (the shipped
text modules are the migration's). Set MADOGUCHI_SCREENSHOTS=docs/screenshots to
refresh the README's screenshots of the text module menu and the phone ticket.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from madoguchi.app import Desk
from madoguchi.web_server import WebServer
from tests.conftest import make_settings
from tests.test_web_browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_web_kit import PASSWORD, ingest_mail, open_web

pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def served(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    settings = make_settings(sqlite_url, tmp_path)
    desk = Desk.open(settings)
    wd = open_web(settings, desk, tmp_path)
    number = ingest_mail(desk, subject="ログインできません")
    server = WebServer(settings, desk=desk, web=wd.web, host="127.0.0.1", port=0).start()
    try:
        yield server.url, number
    finally:
        server.stop()
        desk.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_a_text_module_goes_in_by_keyboard_and_a_call_opens_a_ticket(
    served: tuple[str, str], tmp_path: Path
) -> None:
    url, number = served
    shots = Path(os.environ.get("MADOGUCHI_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(locale="ja-JP", viewport={"width": 1366, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # CSP refusals are console errors; a missing resource is a response (the desk
        # has no favicon yet, another change adds it).
        page.on("console", lambda m: errors.append(m.text) if m.type == "error"
                and not m.text.startswith("Failed to load resource") else None)
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400
                and not r.url.endswith("/favicon.ico") else None)
        page.goto(f"{url}/login")
        page.fill("#login", "agent")
        page.fill("#password", PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{url}/queue")

        # The reply box: a greeting typed, then Ctrl+. and a filter, Enter inserts.
        page.goto(f"{url}/tickets/{number}")
        page.focus("#reply-body")
        page.keyboard.type("（下書き）\n")
        page.keyboard.press("Control+.")
        assert page.evaluate("document.activeElement.id") == "tm-filter"
        page.keyboard.type("該当なし")  # words in no title or text: the list is empty
        assert page.locator("#tm-list li[role=option]:not([hidden])").count() == 0
        page.fill("#tm-filter", "")
        page.keyboard.type("対象外")
        assert page.locator("#tm-list li[role=option]:not([hidden])").count() == 1
        page.fill("#tm-filter", "")
        page.keyboard.type("お礼")
        page.locator("#reply form").first.screenshot(path=str(shots / "text-modules.png"))
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "reply-body"
        body = page.input_value("#reply-body")
        assert body.startswith("（下書き）\n株式会社さくら商事\n山田 太郎 様\n\n"
                               "いつもお世話になっております。")
        assert f"受付番号 {number} にて承りました" in body and "佐藤 彩香でございます" in body
        assert "{" not in body
        assert "送信時に" in page.inner_text("#tm-macro-hint")
        signature = page.inner_text("#reply-signature")
        assert signature.startswith(f"--\n受付番号：{number}") and "担当: 佐藤 彩香" in signature
        # Esc closes the list and gives the reply box back.
        page.keyboard.press("Control+.")
        page.keyboard.press("Escape")
        assert page.locator("#tm-panel").is_hidden()
        page.click("form[action$='/reply'] button[type=submit]")
        page.wait_for_selector(".flash.ok")
        sent = page.locator("article.msg.dir-out .text").inner_text()
        assert "株式会社さくら商事\n山田 太郎 様" in sent and signature in sent
        # The macro of お問い合わせへのお礼: the ticket is the sender's now.
        assert page.locator("#assignee option[selected]").inner_text() == "佐藤 彩香"

        # The phone rings: the caller is found by the number they call from.
        page.click("nav >> text=電話受付")
        page.fill("#caller-q", "0312345678")
        page.keyboard.press("Enter")
        caller = page.locator("section.caller", has_text="山田 太郎 様")
        caller.wait_for()
        assert "株式会社さくら商事" in caller.inner_text()
        caller.locator("input[name=subject]").fill("帳票が印刷できない")
        caller.locator("input[name=minutes]").fill("4")
        caller.locator("textarea[name=text]").fill("帳票の印刷で止まるとのお電話。")
        caller.locator("button.primary").click()
        page.wait_for_url(re.compile(rf"{re.escape(url)}/tickets/T-\d{{4}}-\d{{6}}$"))
        assert "帳票が印刷できない" in page.inner_text("h1")
        assert "着信（お客様から）・相手: 山田 太郎・03-1234-5678・4分" in page.inner_text("main")
        assert "一次回答期限" in page.inner_text("aside")
        page.screenshot(path=str(shots / "phone-ticket.png"), full_page=True)
        assert errors == []
        context.close()
        browser.close()
