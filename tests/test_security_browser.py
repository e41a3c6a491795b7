"""The sign-in defences in Debian's headless Chromium against the real uvicorn server:
strangers' guesses do not keep staff out, a cookie copied before sign-out is worth nothing
after it, and supervisors end sessions from their page at 390 px, by keyboard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from madoguchi.app import Desk
from tests.browser_kit import CHROMIUM, CHROMIUM_ARGS, screenshots
from tests.conftest import make_settings
from tests.security_kit import STRANGER, serving, visitor
from tests.test_web_kit import PASSWORD, WebDesk, open_web

pytest_plugins = ["tests.test_web_kit"]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is missing")]

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def desk_url(sqlite_url: str, tmp_path: Path, quick_hashing: None) -> Iterator[tuple[WebDesk, str]]:
    settings = make_settings(sqlite_url, tmp_path)
    desk = Desk.open(settings)
    wd = open_web(settings, desk, tmp_path)
    with serving(wd) as url:
        yield wd, url
    desk.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _sign_in(page: Any, url: str, login: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#login", login)
    page.fill("#password", PASSWORD)
    page.keyboard.press("Enter")


def test_a_member_of_staff_signs_in_while_strangers_hammer_the_login(
    desk_url: tuple[WebDesk, str], browser: Any,
) -> None:
    _wd, url = desk_url
    stranger = visitor(url, STRANGER)
    codes = [stranger.sign_in("agent", f"wrong-{i}-guess").status_code for i in range(15)]
    assert 429 in codes
    page = browser.new_context(locale="ja-JP").new_page()
    _sign_in(page, url, "agent")
    page.wait_for_url(f"{url}/queue")
    assert "佐藤 彩香" in page.inner_text("header")


def test_a_cookie_copied_before_sign_out_is_worthless_after_it(
    desk_url: tuple[WebDesk, str], browser: Any,
) -> None:
    _wd, url = desk_url
    context = browser.new_context(locale="ja-JP")
    page = context.new_page()
    _sign_in(page, url, "agent")
    page.wait_for_url(f"{url}/queue")
    copied = {c["name"]: c["value"] for c in context.cookies()}
    page.click("header .me button")
    page.wait_for_url(f"{url}/login")
    assert "ログアウトしました" in page.inner_text("main")
    thief = visitor(url, STRANGER, cookies=copied)
    r = thief.client.get("/queue")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_a_supervisor_ends_a_session_at_390_px_by_keyboard(
    desk_url: tuple[WebDesk, str], browser: Any, tmp_path: Path,
) -> None:
    _wd, url = desk_url
    agent = visitor(url, STRANGER)
    assert agent.sign_in("agent").status_code == 303
    page = browser.new_context(locale="ja-JP", viewport={"width": 390, "height": 844}).new_page()
    _sign_in(page, url, "boss")
    page.wait_for_url(f"{url}/queue")
    page.goto(f"{url}/staff/sessions")
    assert STRANGER in page.inner_text("table.sessions")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shots = screenshots(tmp_path)
    page.screenshot(path=str(shots / "sessions-390.png"), full_page=True)
    button = page.locator("button", has_text="佐藤 彩香 のすべてのセッションを終了")
    button.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(".flash.ok")
    assert "1件のセッションを終了しました" in page.inner_text(".flash.ok")
    assert agent.client.get("/queue").status_code == 303
