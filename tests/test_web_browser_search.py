"""Search in Debian's headless Chromium: what staff type (half-width kana, full-width
letters and numbers) finds the ticket once, its original words marked; a filter narrows.

A real uvicorn server on a loopback port over a migrated SQLite desk. Set
MADOGUCHI_SCREENSHOTS=docs/screenshots to refresh the README's search screenshot.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser_kit import chromium, desk_page, screenshots, served_web, sign_in
from tests.conftest import make_settings
from tests.test_web_kit import ingest_mail, make_ticket

pytestmark = pytest.mark.slow


@pytest.fixture
def served(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    with served_web(make_settings(sqlite_url, tmp_path), tmp_path) as (wd, url):
        number = ingest_mail(wd.desk, subject="CSV出力とログインの件", body=(
            "サポートサービス番号: ２０３１－０００１－０００８\n\n"
            "CSV出力のあと、管理画面にログインできなくなりました。\n"
            "受付番号は２０３１－０００３です。\n"))
        make_ticket(wd.desk, subject="別件", text="ログの確認をお願いします")  # no ログイン, no CSV
        yield url, number


def test_half_width_full_width_and_a_full_width_number_find_the_ticket_once(
    served: tuple[str, str], tmp_path: Path
) -> None:
    url, number = served
    shots = screenshots(tmp_path)
    with chromium() as browser:
        page, errors = desk_page(browser, viewport={"width": 1366, "height": 900})
        sign_in(page, url)

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
        assert not errors, errors
