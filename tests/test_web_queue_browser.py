"""The queue's tools in Debian's headless Chromium: bulk close, a phone's 390 px, the keyboard.

A real uvicorn server on a free loopback port, tickets written through the
desk (Playwright drives /usr/bin/chromium; no browser is downloaded). Set
MADOGUCHI_SCREENSHOTS=docs/screenshots to refresh the README's phone screenshots.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from madoguchi.app import Desk
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import (
    Channel,
    Customer,
    Direction,
    Message,
    Ticket,
    TicketStatus,
)
from madoguchi.web_server import WebServer
from tests.browser_kit import chromium, desk_page, screenshots, sign_in
from tests.conftest import make_settings
from tests.test_web_kit import WebDesk, make_ticket, open_web, ticket

pytestmark = pytest.mark.slow

LONG_COMPANY = "株式会社とても長い名前のソフトウェア開発研究所ホールディングス"


@dataclass
class Running:
    wd: WebDesk
    url: str
    numbers: list[str]
    long_thread: str


def _long_thread(desk: Desk, customer_id: int) -> str:
    """A ticket whose thread is several screens long on a phone."""
    number = make_ticket(desk, subject="長いやりとり", customer_id=customer_id,
                         due=datetime.now(UTC) + timedelta(hours=5),
                         text="\n".join(f"{i}行目の説明です。" for i in range(40)))
    now = datetime.now(UTC)
    with transaction(desk.factory) as s:
        t = s.query(Ticket).filter(Ticket.number == number).one()
        for i in range(8):
            s.add(Message(ticket_id=t.id, direction=Direction.IN, channel=Channel.EMAIL,
                          sender="someone@example.jp", sender_name="見本 太郎",
                          subject="Re: 長いやりとり", received_at=now - timedelta(minutes=50 - i),
                          text="\n".join(f"返信{i}の{j}行目" for j in range(30))))
    return number


@pytest.fixture
def running(sqlite_url: str, tmp_path: Path) -> Iterator[Running]:
    settings = make_settings(sqlite_url, tmp_path)
    desk = Desk.open(settings)
    wd = open_web(settings, desk, tmp_path)
    with transaction(desk.factory) as s:
        company = Customer(company=LONG_COMPANY, department="", address="")
        s.add(company)
        s.flush()
        customer_id = company.id
    now = datetime.now(UTC)
    numbers = [make_ticket(desk, subject=f"一括で閉じる{i}", customer_id=customer_id,
                           due=now + timedelta(hours=i + 1)) for i in range(4)]
    long_thread = _long_thread(desk, customer_id)
    server = WebServer(settings, desk=desk, web=wd.web, host="127.0.0.1", port=0).start()
    try:
        yield Running(wd, server.url, numbers, long_thread)
    finally:
        server.stop()
        desk.close()


def _signed_in(browser: Any, url: str, **context: Any) -> tuple[Any, list[str]]:
    page, errors = desk_page(browser, **context)
    page.on("dialog", lambda d: d.accept())
    sign_in(page, url)
    return page, errors


def test_bulk_closing_three_tickets(running: Running) -> None:
    url, numbers = running.url, running.numbers
    with chromium() as browser:
        page, errors = _signed_in(browser, url, viewport={"width": 1366, "height": 900})
        assert page.inner_text("[data-view=all] .count") == "5"
        for number in numbers[:3]:
            page.check(f"input[name=ticket][value='{number}']")
        page.click("#bulk-close")
        page.wait_for_selector(".flash.ok")
        assert "3件を完了にしました。" in page.inner_text(".flash.ok")
        assert page.inner_text("[data-view=all] .count") == "2"
        shown = page.locator("td.number a").all_inner_texts()
        assert numbers[3] in shown and not set(numbers[:3]) & set(shown)
        assert errors == []
    assert [ticket(running.wd.desk, n).status for n in numbers] == [TicketStatus.CLOSED] * 3 + [
        TicketStatus.OPEN]


def _no_horizontal_scroll(page: Any) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_the_queue_and_a_ticket_at_390_px(running: Running, tmp_path: Path) -> None:
    url = running.url
    shots = screenshots(tmp_path)
    with chromium() as browser:
        page, errors = _signed_in(browser, url, viewport={"width": 390, "height": 844},
                                  device_scale_factor=2, is_mobile=True, has_touch=True)
        _no_horizontal_scroll(page)
        # The bulk bar waits for a ticked ticket.
        assert not page.locator("#bulk").is_visible()
        page.check("input[name=ticket] >> nth=0")
        assert page.locator("#bulk-close").is_visible()
        _no_horizontal_scroll(page)
        page.uncheck("input[name=ticket] >> nth=0")
        # Cards: the company name is one line or a few, never a character a line.
        company = page.locator("td.company").first
        page.screenshot(path=str(shots / "queue-phone.png"))
        box = company.bounding_box()
        assert box is not None and box["width"] > 250
        line = float(page.evaluate(
            "el => parseFloat(getComputedStyle(el).lineHeight)", company.element_handle()))
        assert box["height"] < line * 4  # 31 characters and the label: at most three lines

        page.goto(f"{url}/tickets/{running.long_thread}")
        _no_horizontal_scroll(page)
        actions = page.locator("#actions")
        top = float(page.evaluate("el => el.getBoundingClientRect().top + window.scrollY",
                                  actions.element_handle()))
        thread = float(page.evaluate(
            "() => document.querySelector('.thread').getBoundingClientRect().height"))
        assert thread > 5000 and top < 2000, (thread, top)
        # One tap from the top reaches the reply box, below the long thread.
        page.click(".jump a[href='#reply']")
        page.wait_for_function("() => document.getElementById('reply')"
                               ".getBoundingClientRect().top < window.innerHeight")
        page.click(".jump a[href='#note']")
        assert page.locator("#note").evaluate("d => d.open")
        page.click(".jump a[href='#actions']")
        assert page.locator("#assign-me").is_visible()
        page.click("#assign-me")
        page.wait_for_selector(".flash.ok")
        _no_horizontal_scroll(page)
        page.screenshot(path=str(shots / "ticket-phone.png"))
        assert errors == []


def test_shortcuts_move_open_and_explain_themselves(running: Running) -> None:
    url = running.url
    with chromium() as browser:
        page, errors = _signed_in(browser, url, viewport={"width": 1366, "height": 900})
        # Keyboard only: the skip link is the first stop, then the first ticket.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "最初のチケットへスキップ"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "first-ticket"

        page.locator("main").focus()
        order = page.locator("td.number a").all_inner_texts()
        page.keyboard.press("j")
        page.keyboard.press("j")
        page.keyboard.press("k")
        page.keyboard.press("j")
        cursor = page.locator("tr.cursor td.number a")
        assert cursor.count() == 1 and cursor.inner_text() == order[1]
        # Typing in a field is text, not a shortcut.
        page.focus("input[name=customer]")
        page.keyboard.type("jk?o")
        assert page.input_value("input[name=customer]") == "jk?o"
        assert page.locator("tr.cursor td.number a").inner_text() == order[1]
        assert not page.locator("#shortcuts").evaluate("d => d.open")
        page.keyboard.press("Escape")

        page.keyboard.press("?")
        assert page.locator("#shortcuts").evaluate("d => d.open")
        assert "返信を書く" in page.inner_text("#shortcuts")
        page.keyboard.press("Escape")
        assert not page.locator("#shortcuts").evaluate("d => d.open")

        page.keyboard.press("o")
        page.wait_for_url(f"{url}/tickets/{order[1]}")
        page.keyboard.press("n")
        assert page.evaluate("document.activeElement.id") == "note-text"
        page.keyboard.type("nのメモ")
        assert page.input_value("#note-text") == "nのメモ"
        page.keyboard.press("Escape")
        page.keyboard.press("r")
        assert page.evaluate("document.activeElement.id") == "reply-body"
        page.keyboard.press("Escape")
        page.keyboard.press("/")
        assert page.evaluate("document.activeElement.id") == "top-q"
        assert errors == []
