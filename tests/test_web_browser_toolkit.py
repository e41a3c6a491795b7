"""The agent's toolkit in Debian's headless Chromium: a text module inserted by keyboard
with its placeholders filled, and a ticket opened from a call found by phone number.

A real uvicorn server on a loopback port over a migrated SQLite desk (the shipped
text modules are the migration's). Set MADOGUCHI_SCREENSHOTS=docs/screenshots to
refresh the README's screenshots of the text module menu and the phone ticket.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser_kit import chromium, desk_page, screenshots, served_web, sign_in
from tests.conftest import make_settings
from tests.test_web_kit import ingest_mail

pytestmark = pytest.mark.slow


@pytest.fixture
def served(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    with served_web(make_settings(sqlite_url, tmp_path), tmp_path) as (wd, url):
        yield url, ingest_mail(wd.desk, subject="ログインできません")


def test_a_text_module_goes_in_by_keyboard_and_a_call_opens_a_ticket(
    served: tuple[str, str], tmp_path: Path
) -> None:
    url, number = served
    shots = screenshots(tmp_path)
    with chromium() as browser:
        # Every answer of 400 or more is a fault here too (a missing script, a refused form).
        page, errors = desk_page(browser, responses=True, viewport={"width": 1366, "height": 900})
        sign_in(page, url)

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
        # The ticket with its reply box and the text module menu open, as staff see it.
        page.locator("#tm-panel").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "text-modules.png"))
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
