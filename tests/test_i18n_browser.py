"""Switching a user to English and back, in Debian's headless Chromium.

The browser itself is set to Japanese and then to English: the desk's
language is the user's setting, not the browser's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from madoguchi.app import Desk
from madoguchi.ticketing.models import Flag, StaffUser
from madoguchi.web_server import WebServer
from tests.browser_kit import chromium, desk_page, submit_sign_in
from tests.conftest import make_settings
from tests.test_web_kit import WebDesk, make_ticket, open_web

pytestmark = pytest.mark.slow


@dataclass
class Running:
    wd: WebDesk
    url: str
    number: str


@pytest.fixture
def running(sqlite_url: str, tmp_path: Path) -> Iterator[Running]:
    settings = make_settings(sqlite_url, tmp_path)
    desk = Desk.open(settings)
    wd = open_web(settings, desk, tmp_path)
    number = make_ticket(desk, subject="ログインできません", flags=(Flag.URGENT,),
                         due=datetime.now(UTC) + timedelta(hours=3, minutes=20))
    server = WebServer(settings, desk=desk, web=wd.web, host="127.0.0.1", port=0).start()
    try:
        yield Running(wd, server.url, number)
    finally:
        server.stop()
        desk.close()


@pytest.mark.parametrize("browser_locale", ["ja-JP", "en-US"])
def test_switching_a_user_to_english_and_back(running: Running, browser_locale: str) -> None:
    url = running.url
    with chromium() as browser:
        page, errors = desk_page(browser, locale=browser_locale)
        page.goto(f"{url}/login")
        # Nobody has chosen yet: the desk is Japanese whatever the browser prefers.
        assert page.get_attribute("html", "lang") == "ja"
        submit_sign_in(page, "agent")
        page.wait_for_url(f"{url}/queue")
        assert page.inner_text("h1").startswith("キュー")

        # The name in the header leads to the user's own settings.
        page.click("header .me a[href='/me']")
        page.wait_for_url(f"{url}/me")
        page.select_option("select[name=locale]", "en")
        page.click("form[action='/me/locale'] button[type=submit]")
        page.wait_for_url(f"{url}/me")
        assert page.get_attribute("html", "lang") == "en"
        assert page.inner_text(".flash.ok") == "Display language changed."
        assert page.inner_text("h1") == "My settings"

        page.click("header nav a[href='/queue']")
        page.wait_for_url(f"{url}/queue")
        assert page.inner_text("h1").startswith("Queue")
        row = page.locator("tr", has=page.locator(f"a[href='/tickets/{running.number}']"))
        text = row.first.inner_text()
        assert "3 h left" in text and "Urgent" in text and "Email" in text
        headers = page.locator("table.queue thead th").all_inner_texts()
        assert "Response due" in headers and "Subject" in headers
        assert "キュー" not in page.inner_text("header")

        # And back to Japanese, from the same page.
        page.click("header .me a[href='/me']")
        page.select_option("select[name=locale]", "ja")
        page.click("form[action='/me/locale'] button[type=submit]")
        page.wait_for_url(f"{url}/me")
        assert page.get_attribute("html", "lang") == "ja"
        assert page.inner_text(".flash.ok") == "表示言語を変更しました。"
        page.click("header nav a[href='/queue']")
        page.wait_for_url(f"{url}/queue")
        assert page.inner_text("h1").startswith("キュー")
        assert "あと3時間" in page.locator("tr", has=page.locator(
            f"a[href='/tickets/{running.number}']")).first.inner_text()
        assert errors == []
    with running.wd.desk.factory() as s:
        assert s.get(StaffUser, running.wd.users["agent"]).locale == "ja"
