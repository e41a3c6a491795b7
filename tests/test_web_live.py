"""Working together: the change feed, live streams, presence, and actions on a stale view.

On both databases: what a commit changed reaches every listener (NOTIFY on
PostgreSQL, the polled table on SQLite), a reply or an action from a page
older than the ticket is refused with what changed and the text kept, and a
real uvicorn server streams the changes to a signed-in page.
"""

from __future__ import annotations

import html
import http.client
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode, urlsplit

import pytest
from sqlalchemy import func, select

from madoguchi.ticketing import actions, presence
from madoguchi.ticketing.change_feed import PRESENCE, TICKET, Change
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.dialect import dialect_of
from madoguchi.ticketing.live_models import Presence
from madoguchi.ticketing.models import Message, OutboxMessage, StaffUser, Ticket
from madoguchi.web_server import WebServer
from tests.test_web_kit import PASSWORD, Staff, WebDesk, csrf_in, ingest_mail, open_web

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.test_web_kit"]

_VERSION = re.compile(r'name="version" value="([^"]+)"')


def _version(page: str) -> str:
    found = _VERSION.search(page)
    assert found, "no version token in the ticket page"
    return found.group(1)


def _presence(page: str) -> str:
    found = re.search(r'<p class="presence" id="presence"[^>]*>([^<]*)</p>', page)
    assert found, "no presence line in the page"
    return found.group(1)


def _ticket_id(wd: WebDesk, number: str) -> int:
    with wd.desk.factory() as db:
        return db.scalars(select(Ticket.id).where(Ticket.number == number)).one()


def _replies(wd: WebDesk) -> int:
    with wd.desk.factory() as db:
        return db.scalar(select(func.count()).select_from(OutboxMessage)
                         .where(OutboxMessage.kind == "reply")) or 0


def _reply(staff: Staff, number: str, page: str, body: str, **extra: str) -> object:
    return staff.post(f"/tickets/{number}/reply", {
        "to": "yamada@sakura-shoji.example.jp", "cc": "", "body": body, "quote": "1",
        "idempotency_key": re.search(r'name="idempotency_key" value="([0-9a-f]+)"',
                                     page).group(1),  # type: ignore[union-attr]
        "version": _version(page), **extra})


def test_a_second_reply_on_a_stale_page_is_stopped_with_what_changed_and_the_text_kept(
    webdesk: WebDesk, agent: Staff, boss: Staff
) -> None:
    number = ingest_mail(webdesk.desk, subject="ログインできません")
    agent_page = agent.get(f"/tickets/{number}").text
    boss_page = boss.get(f"/tickets/{number}").text

    sent = _reply(boss, number, boss_page, "山田様\n\nパスワードを再設定しました。")
    assert sent.status_code == 303  # type: ignore[attr-defined]
    stale = _reply(agent, number, agent_page, "山田様\n\n再起動をお試しください。",
                   cc="cc@sakura-shoji.example.jp")

    assert stale.status_code == 409  # type: ignore[attr-defined]
    text = html.unescape(stale.text)  # type: ignore[attr-defined]
    assert "画面を開いた後に更新されています" in text and "送信・変更は行っていません" in text
    assert "メールでの返信（鈴木 部長" in text and "パスワードを再設定しました。" in text
    assert ">山田様\n\n再起動をお試しください。</textarea>" in text
    assert 'value="cc@sakura-shoji.example.jp"' in text
    assert _replies(webdesk) == 1  # the boss's only: nothing sent silently

    # Read, the page's new version lets the agent send after all.
    again = _reply(agent, number, stale.text, "山田様\n\n再起動をお試しください。")  # type: ignore[attr-defined]
    assert again.status_code == 303  # type: ignore[attr-defined]
    assert _replies(webdesk) == 2


def test_status_assignment_and_notes_on_a_stale_page_are_stopped(
    webdesk: WebDesk, agent: Staff, boss: Staff
) -> None:
    number = ingest_mail(webdesk.desk, subject="請求書について")
    page = agent.get(f"/tickets/{number}").text
    boss_page = boss.get(f"/tickets/{number}").text
    assert boss.post(f"/tickets/{number}/assign", {
        "assignee": str(webdesk.users["boss"]), "version": _version(boss_page)}
    ).status_code == 303

    status = agent.post(f"/tickets/{number}/status",
                        {"status": "pending", "version": _version(page)})
    assert status.status_code == 409
    assert "担当者: 未割当 → 鈴木 部長" in html.unescape(status.text)
    note = agent.post(f"/tickets/{number}/note",
                      {"text": "社内で確認中", "version": _version(page)})
    assert note.status_code == 409 and ">社内で確認中</textarea>" in note.text
    with webdesk.desk.factory() as db:
        t = db.scalars(select(Ticket).where(Ticket.number == number)).one()
        assert t.status.value == "open" and t.assignee_id == webdesk.users["boss"]
        assert db.scalar(select(func.count()).select_from(Message)
                         .where(Message.ticket_id == t.id)) == 1

    # A customer's mail counts as a change too.
    fresh = agent.get(f"/tickets/{number}").text
    ingest_mail(webdesk.desk, subject=f"Re: [{number}] 請求書について", body="追加の質問です。")
    refused = agent.post(f"/tickets/{number}/status",
                         {"status": "pending", "version": _version(fresh)})
    assert refused.status_code == 409
    assert "お客様からのメール（山田 太郎" in refused.text and "追加の質問です。" in refused.text


def test_what_a_commit_changed_reaches_the_listener_and_a_rollback_says_nothing(
    webdesk: WebDesk
) -> None:
    desk = webdesk.desk
    number = ingest_mail(desk)
    ticket_id = _ticket_id(webdesk, number)
    listener = dialect_of(desk.engine).change_listener(desk.engine, 0.05)
    try:
        assert listener.wait(0.2) == []
        with transaction(desk.factory) as db:
            t = db.get_one(Ticket, ticket_id)
            actions.add_note(db, t, db.get(StaffUser, webdesk.users["agent"]), "確認中", _now())
        assert Change(TICKET, ticket_id) in _heard(listener)

        with desk.factory() as db:
            db.get_one(Ticket, ticket_id).subject = "変えてから取り消す"
            db.flush()
            db.rollback()
        assert _heard(listener, 0.5) == []

        other = ingest_mail(desk, subject="別件です")  # the pipeline's Core INSERTs
        assert Change(TICKET, _ticket_id(webdesk, other)) in _heard(listener)

        with transaction(desk.factory) as db:
            presence.beat(db, "k" * 32, ticket_id, webdesk.users["boss"], _now())
        assert _heard(listener) == [Change(PRESENCE, ticket_id)]
    finally:
        listener.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _heard(listener: object, within: float = 5.0) -> list[Change]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        got = listener.wait(min(0.5, deadline - time.monotonic()))  # type: ignore[attr-defined]
        if got:
            return list(got)
    return []


def test_the_ticket_page_names_who_else_has_it_open_until_they_leave(
    webdesk: WebDesk, agent: Staff
) -> None:
    number = ingest_mail(webdesk.desk)
    ticket_id = _ticket_id(webdesk, number)
    boss_id = webdesk.users["boss"]
    with transaction(webdesk.desk.factory) as db:
        assert presence.beat(db, "b" * 32, ticket_id, boss_id, _now()) is True
        presence.beat(db, "a" * 32, ticket_id, webdesk.users["agent"], _now())
    assert _presence(agent.get(f"/tickets/{number}").text) == "鈴木 部長 が表示中"  # not oneself
    assert "表示中: 佐藤 彩香、鈴木 部長" in agent.get("/queue").text

    with transaction(webdesk.desk.factory) as db:
        assert presence.typing(db, ticket_id, boss_id, _now()) is True
        assert presence.typing(db, ticket_id, boss_id, _now()) is False  # already said
    assert _presence(agent.get(f"/tickets/{number}").text) == "鈴木 部長 が返信を入力中"

    # A page whose beats stopped (its process died) expires by itself ...
    with transaction(webdesk.desk.factory) as db:
        db.get_one(Presence, "b" * 32).seen_at = _now() - presence.EXPIRES - timedelta(seconds=1)
    assert _presence(agent.get(f"/tickets/{number}").text) == ""
    # ... and one that closes leaves at once.
    with transaction(webdesk.desk.factory) as db:
        presence.beat(db, "c" * 32, ticket_id, boss_id, _now())
    assert _presence(agent.get(f"/tickets/{number}").text) == "鈴木 部長 が表示中"
    with transaction(webdesk.desk.factory) as db:
        presence.leave(db, "c" * 32)
    assert _presence(agent.get(f"/tickets/{number}").text) == ""


class Browser:
    """A signed-in client on a real server, with server-sent event streams of its own."""

    def __init__(self, base: str, login: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "", parts.port or 80
        self.cookie = ""
        page = self.get("/login")[1]
        status, _ = self.request("POST", "/login", urlencode({
            "login": login, "password": PASSWORD, "csrf": csrf_in(page), "next": "/queue"}))
        assert status == 303

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        if response.getheader("Set-Cookie"):
            self.cookie = (response.getheader("Set-Cookie") or "").split(";", 1)[0]
        conn.close()
        return response.status, text

    def get(self, path: str) -> tuple[int, str]:
        return self.request("GET", path)

    def stream(self, path: str) -> Stream:
        return Stream(self, path)


class Stream:
    def __init__(self, browser: Browser, path: str) -> None:
        self.conn = http.client.HTTPConnection(browser.host, browser.port, timeout=15)
        self.conn.request("GET", path, headers={"Cookie": browser.cookie,
                                                "Accept": "text/event-stream"})
        self.response = self.conn.getresponse()

    def next_event(self, name: str) -> str:
        """The data of the next event called ``name`` (skipping others)."""
        event = data = ""
        while True:
            line = self.response.readline().decode()
            assert line, "the stream ended"
            line = line.rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and event:
                if event == name:
                    return data
                event = data = ""

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def served(webdesk: WebDesk) -> object:
    web = webdesk.web.model_copy(update={"max_concurrent_requests": 2,
                                         "live_max_connections": 4})
    server = WebServer(webdesk.settings, desk=webdesk.desk, web=web, host="127.0.0.1",
                       port=0).start()
    yield server
    started = time.monotonic()
    server.stop()
    # Open streams are closed at shutdown: it does not wait for them.
    assert time.monotonic() - started < 5


def test_pages_are_told_of_changes_as_they_are_committed(
    webdesk: WebDesk, served: WebServer
) -> None:
    number = ingest_mail(webdesk.desk, subject="ログインできません")
    agent, boss = Browser(served.url, "agent"), Browser(served.url, "boss")
    queue = agent.stream("/live/queue")
    assert queue.response.status == 200
    assert queue.response.getheader("Content-Type", "").startswith("text/event-stream")
    page = agent.get(f"/tickets/{number}")[1]
    ticket = agent.stream(f"/live/tickets/{number}?v={quote(_version(page))}")
    assert ticket.next_event("presence") == '{"text": ""}'
    boss_ticket = boss.stream(f"/live/tickets/{number}?v=x")
    assert "鈴木 部長 が表示中" in ticket.next_event("presence")

    # Mail arrives through the pipeline: the queue hears of it.
    ingest_mail(webdesk.desk, subject="新しいお問い合わせ")
    assert queue.next_event("changed") == "{}"

    # The boss notes something on the ticket: the agent's page is told what.
    boss_page = boss.get(f"/tickets/{number}")[1]
    status, _ = boss.request("POST", f"/tickets/{number}/note", urlencode({
        "text": "先方に電話済み", "csrf": csrf_in(boss_page), "version": _version(boss_page)}))
    assert status == 303
    changed = ticket.next_event("changed")
    assert "社内メモ（鈴木 部長" in changed and "先方に電話済み" in changed

    # Typing is shown to the others; closing the page takes the boss away.
    status, _ = boss.request("POST", f"/live/tickets/{number}/typing",
                             urlencode({"csrf": csrf_in(boss_page)}))
    assert status == 204
    assert "鈴木 部長 が返信を入力中" in ticket.next_event("presence")
    boss_ticket.close()
    assert ticket.next_event("presence") == '{"text": ""}'
    for s in (queue, ticket):
        s.close()


def test_open_streams_take_no_place_of_requests_and_have_a_cap_of_their_own(
    webdesk: WebDesk, served: WebServer
) -> None:
    agent = Browser(served.url, "agent")
    streams = [agent.stream("/live/queue") for _ in range(4)]  # > max_concurrent_requests
    assert all(s.response.status == 200 for s in streams)
    assert agent.get("/queue")[0] == 200
    refused = agent.stream("/live/queue")
    assert refused.response.status == 503  # live_max_connections
    refused.close()
    # However many pages are open, the process listens to the database once.
    assert [t.name for t in threading.enumerate()].count("madoguchi-live") == 1
    for s in streams:
        s.close()


def test_a_stream_is_refused_without_a_session(webdesk: WebDesk, served: WebServer) -> None:
    parts = urlsplit(served.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    conn.request("GET", "/live/queue")
    assert conn.getresponse().status == 401
    conn.close()


def test_live_updates_can_be_turned_off(sqlite_url: str, tmp_path: object,
                                        quick_hashing: None) -> None:
    from madoguchi.app import Desk
    from tests.conftest import make_settings

    settings = make_settings(sqlite_url, tmp_path)  # type: ignore[arg-type]
    desk = Desk.open(settings)
    try:
        wd = open_web(settings, desk, tmp_path, live_updates=False)  # type: ignore[arg-type]
        agent = wd.sign_in()
        number = ingest_mail(desk)
        page = agent.get(f"/tickets/{number}").text
        assert 'data-live-url=""' in page and 'name="version"' in page
        assert agent.get("/live/queue").status_code == 404
    finally:
        desk.close()


def test_a_triage_decision_on_a_stale_list_is_stopped(
    webdesk: WebDesk, agent: Staff, boss: Staff
) -> None:
    number = ingest_mail(webdesk.desk, subject="見積もりのお願い",
                         from_=("知らない 人", "stranger@example.com"))
    listed = agent.get("/triage").text
    token = re.search(rf'/tickets/{number}/out-of-scope".*?name="version" value="([^"]+)"',
                      listed, re.S)
    assert token, "no version in the triage form"
    boss_page = boss.get(f"/tickets/{number}").text
    assert boss.post(f"/tickets/{number}/note", {
        "text": "営業部から連絡済み", "version": _version(boss_page)}).status_code == 303

    refused = agent.post(f"/tickets/{number}/out-of-scope", {
        "reason": "営業宛て", "back": "triage", "version": token.group(1)})
    assert refused.status_code == 409 and "営業部から連絡済み" in refused.text
    with webdesk.desk.factory() as db:
        status = db.scalars(select(Ticket.status).where(Ticket.number == number)).one()
    assert status.value == "open"


def test_an_open_page_is_not_activity_its_session_still_idles_out(
    webdesk: WebDesk, served: WebServer
) -> None:
    from madoguchi.ticketing.security_models import WebSession

    agent = Browser(served.url, "agent")
    earlier = _now() - timedelta(minutes=5)
    with transaction(webdesk.desk.factory) as db:
        for row in db.scalars(select(WebSession)):
            row.last_seen_at = earlier
    stream = agent.stream("/live/queue")
    assert stream.response.status == 200
    conn = http.client.HTTPConnection(urlsplit(served.url).hostname or "",
                                      urlsplit(served.url).port, timeout=5)
    conn.request("GET", "/queue", headers={"Cookie": agent.cookie, "X-Madoguchi-Live": "1"})
    assert conn.getresponse().status == 200  # the queue redrawing itself
    conn.close()
    with webdesk.desk.factory() as db:
        seen = [r.last_seen_at for r in db.scalars(select(WebSession))]
    assert all(abs((s - earlier).total_seconds()) < 1 for s in seen)
    agent.get("/queue")  # a page staff open is
    with webdesk.desk.factory() as db:
        assert max(r.last_seen_at for r in db.scalars(select(WebSession))) > earlier
    stream.close()


def test_one_round_beats_every_open_page_and_ends_the_streams_of_an_ended_session(
    webdesk: WebDesk
) -> None:
    from sqlalchemy import event

    from madoguchi.ticketing import sessions
    from madoguchi.web.live import BEAT, END, StreamRounds
    from madoguchi.web.live_hub import Subscriber

    tickets = [_ticket_id(webdesk, ingest_mail(webdesk.desk, subject=f"件名 {n}"))
               for n in range(10)]
    agent_id, boss_id = webdesk.users["agent"], webdesk.users["boss"]
    earlier = _now() - timedelta(seconds=20)
    with transaction(webdesk.desk.factory) as db:
        agent = sessions.open_session(db, db.get_one(StaffUser, agent_id), _now())
        boss = sessions.open_session(db, db.get_one(StaffUser, boss_id), _now())
        for n, ticket_id in enumerate(tickets):
            presence.beat(db, f"a{n:031d}", ticket_id, agent_id, earlier)
        presence.beat(db, "b" * 32, tickets[0], boss_id, earlier)
    pages = [Subscriber(t, token=agent, view=(f"a{n:031d}", agent_id))
             for n, t in enumerate(tickets)]
    pages += [Subscriber(tickets[0], token=boss, view=("b" * 32, boss_id)),
              Subscriber(None, token=boss)]  # the boss's queue
    rounds = StreamRounds(webdesk.app.state.desk)

    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(webdesk.desk.engine, "before_cursor_execute", count)
    try:
        rounds(pages)()  # the hub's thread, then its event loop
    finally:
        event.remove(webdesk.desk.engine, "before_cursor_execute", count)
    # Twelve streams, one round: a handful of statements, not three a stream.
    assert len([s for s in statements if not s.startswith(("BEGIN", "COMMIT"))]) <= 5
    assert all(BEAT in s.kinds for s in pages)
    assert {v.staff_id for v in pages[0].viewers} == {agent_id, boss_id}
    assert pages[10].viewers == pages[0].viewers
    assert [v.staff_id for v in pages[1].viewers] == [agent_id]
    with webdesk.desk.factory() as db:
        seen = list(db.scalars(select(Presence.seen_at)))
    assert len(seen) == 11 and min(seen) > earlier + timedelta(seconds=10)

    # The boss is signed out elsewhere: at the round's next look at the sessions the
    # boss's streams are ended, the agent's beat on.
    with transaction(webdesk.desk.factory) as db:
        sessions.revoke(db, boss, _now())
    for s in pages:
        s.kinds.clear()
    rounds(pages)()
    assert all(BEAT in s.kinds for s in pages)  # not the time to look yet
    rounds.next_check = 0.0
    for s in pages:
        s.kinds.clear()
    rounds(pages)()
    assert all(s.kinds == {BEAT} for s in pages[:10])
    assert pages[10].kinds == {END} and pages[11].kinds == {END}


def _count(page: str, view: str) -> int:
    found = re.search(rf'data-view="{view}">[^<]*<span class="count">(\d+)</span>', page)
    assert found, f"no count of {view}"
    return int(found.group(1))


def test_the_queue_counts_follow_changes_made_elsewhere_and_an_action_here_at_once(
    webdesk: WebDesk, served: WebServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from madoguchi.web import queries

    counted: list[int] = []
    real = queries.view_counts

    def view_counts(*args: object, **kwargs: object) -> list[int]:
        counted.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(queries, "view_counts", view_counts)
    kept = dialect_of(webdesk.desk.engine).snapshot_per_statement
    deadline = time.monotonic() + 10
    while kept and not served.app.state.live.listening:  # started with the server
        assert time.monotonic() < deadline, "the change feed never listened"
        time.sleep(0.05)
    heard = threading.Event()
    served.app.state.live.on_ticket_change.append(heard.set)
    agent = Browser(served.url, "agent")
    first = ingest_mail(webdesk.desk, subject="一件目")
    assert not kept or heard.wait(10)  # its word has come (no later one to clear what is kept)
    deadline = time.monotonic() + 10
    while _count(agent.get("/queue")[1], "all") != 1:  # the word of it may still be on its way
        assert time.monotonic() < deadline, "the ticket was never counted"
        time.sleep(0.1)
    before = len(counted)
    assert _count(agent.get("/queue")[1], "all") == 1
    assert len(counted) == before + (0 if kept else 1)  # PostgreSQL: kept, not counted again

    ingest_mail(webdesk.desk, subject="二件目")  # the pipeline, not this web process
    deadline = time.monotonic() + 10
    while _count(agent.get("/queue")[1], "all") != 2:
        assert time.monotonic() < deadline, "the new ticket was never counted"
        time.sleep(0.1)

    page = agent.get("/queue")[1]
    status, _ = agent.request("POST", "/queue/bulk", urlencode({
        "ticket": first, "action": "close", "csrf": csrf_in(page), "back": "/queue"}))
    assert status == 303
    assert _count(agent.get("/queue")[1], "all") == 1  # the page after the action
