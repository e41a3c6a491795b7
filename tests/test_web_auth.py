"""Sign-in, sessions, CSRF, roles and security headers of the web desk."""

from __future__ import annotations

import logging
import re
import stat
import time
from urllib.parse import unquote

import pytest
from sqlalchemy import select

from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import Attachment, Channel, Flag, StaffUser
from madoguchi.web import auth
from madoguchi.web.http import PAGE_CSP
from madoguchi.web_cli import set_password
from tests.test_web_kit import (
    PASSWORD,
    Staff,
    WebDesk,
    csrf_in,
    make_ticket,
    png,
)

PAGES = [
    "/", "/queue", "/triage", "/search?q=ライセンス", "/customers", "/customers/1",
    "/customers/1/edit", "/customers/import", "/contracts/1", "/contracts/1/edit",
    "/contacts/1/edit",
]

pytest_plugins = ["tests.test_web_kit"]


def _fax_with_page(wd: WebDesk) -> tuple[str, int]:
    number = make_ticket(wd.desk, channel=Channel.FAX, flags=(Flag.UNREADABLE_FAX,),
                         page=png())
    with wd.desk.factory() as s:
        return number, s.scalars(select(Attachment.id)).one()


def test_every_page_and_every_file_requires_sign_in(sqlite_webdesk: WebDesk) -> None:
    number, attachment = _fax_with_page(sqlite_webdesk)
    client = sqlite_webdesk.anonymous()
    for path in [*PAGES, f"/tickets/{number}", f"/attachments/{attachment}",
                 f"/attachments/{attachment}/view", "/messages/1/html"]:
        r = client.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next=")
        assert unquote(unquote(r.headers["location"].split("=", 1)[1])) == path
        assert number not in r.text
    # An action without a session never reaches the database either.
    token = csrf_in(client.get("/login").text)
    r = client.post(f"/tickets/{number}/note", data={"csrf": token, "text": "x"})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_sign_in_opens_the_queue_and_a_wrong_password_does_not(webdesk: WebDesk) -> None:
    client = webdesk.anonymous()
    token = csrf_in(client.get("/login?next=/triage").text)
    r = client.post("/login", data={"login": "agent", "password": "wrong password!",
                                    "csrf": token, "next": "/triage"})
    assert r.status_code == 401
    assert "ログイン名またはパスワードが正しくありません" in r.text
    assert client.get("/queue").status_code == 303
    r = client.post("/login", data={"login": "nobody", "password": PASSWORD, "csrf": token})
    assert r.status_code == 401
    r = client.post("/login", data={"login": "agent", "password": PASSWORD, "csrf": token,
                                    "next": "/triage"})
    assert r.status_code == 303 and r.headers["location"] == "/triage"
    page = client.get("/queue")
    assert page.status_code == 200 and "キュー" in page.text and "佐藤 彩香" in page.text


def test_sign_in_returns_only_to_a_page_of_this_site(sqlite_webdesk: WebDesk) -> None:
    client = sqlite_webdesk.anonymous()
    token = csrf_in(client.get("/login").text)
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        r = client.post("/login", data={"login": "agent", "password": PASSWORD,
                                        "csrf": token, "next": target})
        assert r.headers["location"] == "/queue"
        token = csrf_in(client.get("/queue").text)


def test_passwords_are_argon2_hashes_and_never_logged(
    sqlite_webdesk: WebDesk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = sqlite_webdesk.anonymous()
    token = csrf_in(client.get("/login").text)
    client.post("/login", data={"login": "agent", "password": "not-the-password",
                                "csrf": token})
    client.post("/login", data={"login": "agent", "password": PASSWORD, "csrf": token})
    assert "failed sign-in" in caplog.text and "agent signed in" in caplog.text
    assert PASSWORD not in caplog.text and "not-the-password" not in caplog.text
    with sqlite_webdesk.desk.factory() as s:
        stored = s.scalars(select(StaffUser.password_hash)).all()
    assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in stored)


def test_repeated_failures_pause_sign_in_even_with_the_right_password(
    sqlite_webdesk: WebDesk,
) -> None:
    client = sqlite_webdesk.anonymous()
    token = csrf_in(client.get("/login").text)
    for _ in range(sqlite_webdesk.web.login_max_failures):
        r = client.post("/login", data={"login": "agent", "password": "guess-guess",
                                        "csrf": token})
        assert r.status_code == 401
    r = client.post("/login", data={"login": "agent", "password": PASSWORD, "csrf": token})
    assert r.status_code == 429 and "しばらく時間をおいて" in r.text


def test_sign_out_ends_the_session(sqlite_webdesk: WebDesk) -> None:
    staff = sqlite_webdesk.sign_in()
    r = staff.post("/logout")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert staff.get("/queue").status_code == 303
    assert "ログアウトしました" in staff.get("/login").text


def test_sessions_expire_when_idle_and_after_their_lifetime(
    sqlite_webdesk: WebDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    idle = sqlite_webdesk.web.session_idle_minutes * 60
    staff = sqlite_webdesk.sign_in()
    clock[0] += idle - 60
    assert staff.get("/queue").status_code == 200  # each request renews the idle time
    clock[0] += idle - 60
    assert staff.get("/queue").status_code == 200
    clock[0] += idle + 1
    assert staff.get("/queue").status_code == 303

    staff = sqlite_webdesk.sign_in()
    lifetime = sqlite_webdesk.web.session_max_hours * 3600
    elapsed = 0.0
    while elapsed + idle / 2 < lifetime:
        clock[0] += idle / 2
        elapsed += idle / 2
        assert staff.get("/queue").status_code == 200
    clock[0] += idle / 2
    assert staff.get("/queue").status_code == 303


def test_a_new_password_or_deactivation_ends_every_session(sqlite_webdesk: WebDesk) -> None:
    staff = sqlite_webdesk.sign_in()
    set_password(sqlite_webdesk.desk, "agent", "another long password", create=False)
    assert staff.get("/queue").status_code == 303
    staff = sqlite_webdesk.sign_in(password="another long password")
    with transaction(sqlite_webdesk.desk.factory) as s:
        s.scalars(select(StaffUser).where(StaffUser.login == "agent")).one().active = False
    assert staff.get("/queue").status_code == 303


def test_a_post_without_the_sessions_csrf_token_is_refused(sqlite_webdesk: WebDesk) -> None:
    number = make_ticket(sqlite_webdesk.desk)
    staff = sqlite_webdesk.sign_in()
    path = f"/tickets/{number}/note"
    assert staff.client.post(path, data={"text": "メモ"}).status_code == 403
    assert staff.client.post(path, data={"text": "メモ", "csrf": "x" * 43}).status_code == 403
    other = sqlite_webdesk.sign_in("boss")
    assert staff.client.post(path, data={"text": "メモ", "csrf": other.csrf}).status_code == 403
    r = staff.post(path, {"text": "メモ"}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = staff.post(path, {"text": "メモ"}, headers={"Origin": "http://testserver"})
    assert r.status_code == 303
    # The sign-in form is protected too (no sign-in forced from another site).
    anon = sqlite_webdesk.anonymous()
    r = anon.post("/login", data={"login": "agent", "password": PASSWORD})
    assert r.status_code == 403


def test_pages_carry_the_security_headers_and_no_inline_script_or_style(
    sqlite_webdesk: WebDesk,
) -> None:
    number, _ = _fax_with_page(sqlite_webdesk)
    staff = sqlite_webdesk.sign_in("boss")
    anon = sqlite_webdesk.anonymous()
    responses = [anon.get("/login")] + [
        staff.get(p, follow_redirects=True) for p in [*PAGES, f"/tickets/{number}"]
    ]
    for r in responses:
        assert r.status_code == 200, r.url
        assert r.headers["content-security-policy"] == PAGE_CSP
        assert "default-src 'self'" in PAGE_CSP and "frame-ancestors 'none'" in PAGE_CSP
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["referrer-policy"] == "same-origin"
        assert not re.search(r"<script(?![^>]*\bsrc=)", r.text), r.url
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", r.text), r.url


def test_no_secret_reaches_a_page(sqlite_webdesk: WebDesk) -> None:
    number, _ = _fax_with_page(sqlite_webdesk)
    staff = sqlite_webdesk.sign_in("boss")
    secret = sqlite_webdesk.web.secret_key_file.read_text().strip()  # type: ignore[union-attr]
    with sqlite_webdesk.desk.factory() as s:
        hashes = s.scalars(select(StaffUser.password_hash)).all()
    for path in [*PAGES, f"/tickets/{number}"]:
        text = staff.get(path, follow_redirects=True).text
        assert secret not in text and PASSWORD not in text
        assert not any(h in text for h in hashes)


def test_the_session_secret_is_created_readable_by_the_owner_only(
    sqlite_webdesk: WebDesk,
) -> None:
    path = sqlite_webdesk.web.secret_key_file
    assert path is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) >= 32
    assert auth.load_secret(path) == path.read_text().strip().encode()


def test_only_a_supervisor_edits_customers_and_imports(
    sqlite_webdesk: WebDesk,
) -> None:
    agent_, boss_ = sqlite_webdesk.sign_in("agent"), sqlite_webdesk.sign_in("boss")
    for path in ("/customers/1/edit", "/contracts/1/edit", "/contacts/1/edit",
                 "/customers/import"):
        assert agent_.get(path).status_code == 403
        assert boss_.get(path).status_code == 200
    r = agent_.post("/customers/1/edit", {"company": "乗っ取り", "department": "", "address": ""})
    assert r.status_code == 403
    assert "乗っ取り" not in agent_.get("/customers/1").text
    # Both roles read customers and work tickets.
    assert agent_.get("/customers/1").status_code == 200


def test_unknown_pages_and_methods_answer_in_japanese(agent: Staff, boss: Staff) -> None:
    r = agent.get("/no-such-page")
    assert r.status_code == 404 and "見つかりません" in r.text
    assert agent.get("/tickets/T-1999-000001").status_code == 404
    assert agent.client.delete("/queue").status_code == 405
