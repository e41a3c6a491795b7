"""Debian's Chromium for the browser tests: one launch, one way to watch a page, one sign-in.

    with chromium() as browser:
        page, errors = desk_page(browser, viewport={"width": 390, "height": 800})
        sign_in(page, url, "agent", then=f"/tickets/{number}")
        ...
        assert not errors

Chromium is Debian's (/usr/bin/chromium), never one a tool downloads; a test
skips when it is not installed (``scripts/setup.sh --test`` installs it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from madoguchi.app import Desk
from madoguchi.config import Settings
from madoguchi.web_server import WebServer
from tests.test_web_kit import PASSWORD, WebDesk, open_web

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying hosts this closed
# machine cannot reach (shared/NOTES.md of the workplace; the project's README).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def screenshots(tmp_path: Path) -> Path:
    """Where a test puts its screenshots: MADOGUCHI_SCREENSHOTS=docs/screenshots refreshes
    the README's; else a scratch folder (the shots are still taken: a page that cannot be
    drawn fails the test)."""
    shots = Path(os.environ.get("MADOGUCHI_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    return shots


@contextmanager
def served_web(settings: Settings, tmp_path: Path, **web: Any) -> Iterator[tuple[WebDesk, str]]:
    """The desk (demo customers, users agent and boss) behind a real uvicorn on a loopback
    port: the web desk and its address; both are stopped afterwards."""
    desk = Desk.open(settings)
    try:
        wd = open_web(settings, desk, tmp_path, **web)
        server = WebServer(settings, desk=desk, web=wd.web, host="127.0.0.1", port=0).start()
        try:
            yield wd, server.url
        finally:
            server.stop()
    finally:
        desk.close()


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium, closed afterwards; the test skips when there is none."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def watch(page: Any, errors: list[str], *, who: str = "", responses: bool = False) -> None:
    """Collect what went wrong in ``page``: script errors and console errors (a CSP refusal
    is one); with ``responses`` also every answer of 400 or more (the favicon aside)."""
    tag = f"{who}: " if who else ""
    page.on("pageerror", lambda e: errors.append(f"{tag}{e}"))
    page.on("console", lambda m: errors.append(f"{tag}{m.text}") if m.type == "error"
            and not m.text.startswith("Failed to load resource") else None)
    if responses:
        page.on("response", lambda r: errors.append(f"{tag}{r.status} {r.url}")
                if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)


def desk_page(browser: Any, *, locale: str = "ja-JP", responses: bool = False,
              **context: Any) -> tuple[Any, list[str]]:
    """A page in a context of its own (its own cookies), watched for errors."""
    page = browser.new_context(locale=locale, **context).new_page()
    errors: list[str] = []
    watch(page, errors, responses=responses)
    return page, errors


def submit_sign_in(page: Any, login: str, password: str = PASSWORD) -> None:
    """Fill the sign-in form the page shows, by keyboard (Enter sends it)."""
    page.fill("#login", login)
    page.fill("#password", password)
    page.keyboard.press("Enter")


def sign_in(page: Any, url: str, login: str = "agent", *, then: str = "/queue") -> None:
    """Open ``then``; the desk asks an anonymous visitor to sign in and brings them back."""
    page.goto(f"{url}{then}")
    assert "/login" in page.url, page.url
    submit_sign_in(page, login)
    page.wait_for_url(f"{url}{then}")
