"""Search in Debian's headless Chromium: what staff type (half-width kana, full-width
letters and numbers) finds the ticket once, its original words marked; a filter narrows.

A real uvicorn server on a loopback port over a migrated SQLite desk. Set
MADOGUCHI_SCREENSHOTS=docs/screenshots to refresh the README's search screenshot.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from madoguchi.app import Desk
from madoguchi.web_server import WebServer
from tests.conftest import make_settings
from tests.test_web_browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_web_kit import PASSWORD, ingest_mail, make_ticket, open_web

pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def served(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    settings = make_settings(sqlite_url, tmp_path)
    desk = Desk.open(settings)
    wd = open_web(settings, desk, tmp_path)
    number = ingest_mail(desk, subject="CSV出力とログインの件", body=(
        "サポートサービス番号: ２０３１－０００１－０００８\n\n"
        "CSV出力のあと、管理画面にログインできなくなりました。\n"
        "受付番号は２０３１－０００３です。\n"))
    make_ticket(desk, subject="別件", text="ログの確認をお願いします")  # no ログイン, no CSV
    server = WebServer(settings, desk=desk, web=wd.web, host="127.0.0.1", port=0).start()
    try:
        yield server.url, number
    finally:
        server.stop()
        desk.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_half_width_full_width_and_a_full_width_number_find_the_ticket_once(
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
        page.on("console", lambda m: errors.append(m.text) if m.type == "error"
                and not m.text.startswith("Failed to load resource") else None)
        page.goto(f"{url}/login")
        page.fill("#login", "agent")
        page.fill("#password", PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{url}/queue")

        for typed, marked in (("ﾛｸﾞｲﾝ", "ログイン"), ("ＣＳＶ", "CSV"),
                              ("2031-0003", "２０３１－０００３")):
            page.goto(f"{url}/search")
            page.focus("#q")
            page.keyboard.type(typed)
            page.keyboard.press("Enter")
            page.wait_for_selector("ol.hits")
            hits = page.locator("ol.hits > li:not(.empty)")
            assert hits.count() == 1, typed
            assert page.locator(f'ol.hits a[href^="/tickets/{number}#m"]').count() == 1, typed
            assert hits.first.locator("mark").inner_text() == marked, typed

        # A filter chosen by keyboard: no pending ticket has the word.
        page.goto(f"{url}/search?q=ＣＳＶ")
        page.select_option("select[name=status]", "pending")
        page.focus("#q")
        page.keyboard.press("Enter")
        page.wait_for_selector("ol.hits")
        assert page.locator("ol.hits > li.empty").count() == 1
        page.goto(f"{url}/search?q=ﾛｸﾞｲﾝ")
        page.screenshot(path=str(shots / "search.png"), full_page=True)
        assert "pageerror" not in " ".join(errors) and not errors, errors
        browser.close()
