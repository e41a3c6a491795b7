"""The web desk end to end in Debian's headless Chromium (Playwright, no browser download).

A real uvicorn server on a free loopback port, a real SMTP listener, real mail
and a real FAX through the pipeline. Set MADOGUCHI_SCREENSHOTS=docs/screenshots
to refresh the README's screenshots from this run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest

from madoguchi.ingest.inbound import Inbound
from tests.browser_kit import chromium, screenshots, served_web, sign_in
from tests.conftest import make_settings
from tests.faxfactory import letter_pdf, send_fax
from tests.smtp_server import SmtpTestServer
from tests.test_web_kit import WebDesk, ingest_mail

# The system lane: whole processes, for minutes (tests/conftest.py).
pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.sync_api")

HOSTILE = "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2;alert(2)\">"


class Desktop:
    """The running desk and what the browser test created in it."""

    def __init__(self, wd: WebDesk, url: str, numbers: dict[str, str]) -> None:
        self.wd, self.url, self.numbers = wd, url, numbers


@pytest.fixture
def desktop(sqlite_url: str, tmp_path: Path, smtp_server: SmtpTestServer) -> Iterator[Desktop]:
    settings = make_settings(sqlite_url, tmp_path, smtp=smtp_server.smtp_settings())
    with served_web(settings, tmp_path, send_outbox_after_reply=True) as (wd, url):
        desk = wd.desk
        numbers = {"thread": ingest_mail(desk, subject="ログインできません",
                                         message_id="first@sakura.example.jp",
                                         body="サポートサービス番号: 2031-0001-0008\n\n"
                                              "今朝から管理画面にログインできません。\n")}
        ingest_mail(desk, subject=f"Re: [{numbers['thread']}] ログインできません",
                    message_id="second@sakura.example.jp", in_reply_to="first@sakura.example.jp",
                    references=["first@sakura.example.jp"], body="エラー番号は E-1024 です。\n")
        fax = send_fax(letter_pdf(["お世話になっております。",
                                   "ライセンスキーの再発行をお願いします。",
                                   "株式会社さくら商事 山田"]), tmp_path / "fax.tif")
        out = desk.pipeline.ingest(Inbound(fax.read_bytes(), "test", str(fax), kind="fax"))
        assert out.ticket_number
        numbers["fax"] = out.ticket_number
        numbers["hostile"] = ingest_mail(
            desk, subject=f"お知らせ {HOSTILE}", body=f"本文 {HOSTILE}",
            html=f"<p>HTMLのお知らせ</p>{HOSTILE}<iframe src=\"https://evil.example/\"></iframe>",
            from_=("怪しい 送信者", "someone@evil.example"),
        )
        yield Desktop(wd, url, numbers)


def test_staff_work_the_desk_in_a_real_browser(
    desktop: Desktop, smtp_server: SmtpTestServer, tmp_path: Path
) -> None:
    shots = screenshots(tmp_path)
    url, n = desktop.url, desktop.numbers
    with chromium() as browser:
        context = browser.new_context(locale="ja-JP", viewport={"width": 1366, "height": 900})
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        # Sign in: the queue sends an anonymous visitor to the sign-in page.
        sign_in(page, url)
        rows = page.locator("table.queue tbody tr")
        assert rows.count() == 3
        assert page.locator(".badge.flag-unreadable_fax").count() == 1
        assert page.locator(".badge.flag-unregistered_sender").count() == 1
        page.screenshot(path=str(shots / "queue.png"))

        # A threaded ticket: both inbound mails, in order.
        page.click(f"td.number >> text={n['thread']}")
        page.wait_for_url(f"{url}/tickets/{n['thread']}")
        texts = page.locator("article.msg .text").all_inner_texts()
        assert len(texts) == 2 and "ログインできません" in texts[0] and "E-1024" in texts[1]
        assert "株式会社さくら商事" in page.inner_text("aside")

        # Reply by mail: it reaches the SMTP listener with the thread's headers.
        page.fill("#reply-body", "山田様\n\nパスワードの再設定をお試しください。")
        page.click("form[action$='/reply'] button[type=submit]")
        page.wait_for_selector(".flash.ok")
        assert page.locator("article.msg.dir-out").count() == 1
        page.screenshot(path=str(shots / "ticket.png"), full_page=True)
        reply = _wait_for_reply(smtp_server, n["thread"])
        assert reply["In-Reply-To"] == "<second@sakura.example.jp>"
        assert reply["References"] == "<first@sakura.example.jp> <second@sakura.example.jp>"
        assert "> エラー番号は E-1024 です。" in reply.get_body().get_content()  # type: ignore[union-attr]

        # Triage the FAX: its page image next to the OCR text, then its number.
        page.click("nav >> text=トリアージ")
        page.wait_for_url(f"{url}/triage")
        item = page.locator(f"#triage-{n['fax']}")
        image = item.locator(".pages img").first
        image.wait_for()
        page.wait_for_function("img => img.complete && img.naturalWidth > 500",
                               arg=image.element_handle())
        assert "ライセンス" in item.locator(".ocr").inner_text()
        page.screenshot(path=str(shots / "triage.png"))
        item.locator("input[name=support_number]").fill("2031-0001-0009")
        item.locator("button.primary").click()
        # Refused: the number stays as typed, the reason beside its field.
        assert "チェックディジット" in item.locator(".field-error").inner_text()
        assert item.locator("input[name=support_number]").input_value() == "2031-0001-0009"
        page.locator(f"#triage-{n['fax']} input[name=support_number]").fill("2031-0001-0008")
        page.locator(f"#triage-{n['fax']} button.primary").click()
        page.wait_for_selector(".flash.ok")
        # Numbered, it leaves the FAX section; the page names no registered contact by
        # full name ("山田" only), so it is flagged as the pipeline would and waits among
        # the flagged inquiries.
        assert page.locator(f"article.fax#triage-{n['fax']}").count() == 0
        assert "未登録の送信者" in page.locator(f"article.mail#triage-{n['fax']}").inner_text()

        # Search in Japanese from the keyboard: "/" jumps to the search box.
        page.keyboard.press("/")
        assert page.evaluate("document.activeElement.id") == "top-q"
        page.keyboard.type("ライセンス")
        page.keyboard.press("Enter")
        page.wait_for_url("**/search?q=*")
        assert page.locator(f".hits a[href^='/tickets/{n['fax']}']").count() >= 1
        assert page.locator(".hits mark").first.inner_text() == "ライセンス"

        # A mail full of script and handlers runs nothing.
        page.goto(f"{url}/tickets/{n['hostile']}")
        page.click(".html-part summary")
        frame_element = page.locator(".html-part iframe")
        frame_element.wait_for()
        assert frame_element.get_attribute("sandbox") == ""
        frame = frame_element.element_handle().content_frame()
        assert frame is not None
        frame.wait_for_load_state()
        assert "HTMLのお知らせ" in frame.inner_text("body")
        assert frame.locator("script, iframe, [onerror]").count() == 0
        page.wait_for_timeout(300)
        assert page.evaluate("window.pwned") is None
        assert "&lt;script&gt;" in page.content() or "<script>window" in page.inner_text("main")
        assert dialogs == [] and errors == []
        context.close()


def _wait_for_reply(server: SmtpTestServer, number: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for received in server.messages:
            mail = message_from_bytes(received.raw, policy=default_policy)
            if str(mail["Subject"]).startswith(f"Re: [{number}]"):
                return mail
        time.sleep(0.1)
    raise AssertionError("the reply did not reach the SMTP server")
