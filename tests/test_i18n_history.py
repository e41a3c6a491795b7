"""History lines and the search's problems in the reader's language (Japanese kept as stored)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from madoguchi.ticketing import actions
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.history import events_of
from madoguchi.ticketing.history_line import Line, say
from madoguchi.ticketing.models import StaffUser, Ticket
from madoguchi.ticketing.search import search_terms
from madoguchi.ticketing.search_filters import parse_filters
from tests.test_i18n import visible_text
from tests.test_web_kit import WebDesk, make_ticket

pytest_plugins = ["tests.test_web_kit"]

_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uff01-\uff5e]")


def test_a_line_is_stored_in_japanese_and_shown_with_its_parts_translated() -> None:
    at = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo
    line = (say("状態: %(old)s → %(new)s", old="保留", new="対応中")
            + say("（再通知 %(at)s）", at=at))
    assert line.text() == "状態: 保留 → 対応中（再通知 12月3日(木) 10:00）"
    english = {"状態: %(old)s → %(new)s": "State: %(old)s → %(new)s", "保留": "Pending",
               "対応中": "Open", "（再通知 %(at)s）": " (reminder %(at)s)"}
    shown = line.text(lambda m: english.get(m, m), lambda d: d.strftime("%d %b %H:%M"))
    assert shown == "State: Pending → Open (reminder 03 Dec 01:00)"
    # A value that is not a catalogue entry (a name, a number) is shown as it is.
    named = say("担当者: %(before)s → %(after)s", before="未割当", after="佐藤 花子")
    shown = named.text(lambda m: {"未割当": "Unassigned"}.get(m, m))
    assert shown == "担当者: Unassigned → 佐藤 花子"
    assert Line.from_json(json.loads(json.dumps(line.to_json()))) == line
    # What a reader cannot trust is no line (the stored Japanese text is shown instead).
    for stored in ("text", [["x", {"at": {"no": 1}}]], [["x", ["not", "a", "dict"]]], [[1, {}]]):
        assert Line.from_json(stored) is None, stored


def test_a_message_without_values_is_not_formatted() -> None:
    assert say("100%の確認").text() == "100%の確認"


def test_the_search_problems_are_marked_sentences() -> None:
    terms, problem = search_terms("あ")
    assert terms == [] and problem is not None
    assert problem.text() == "検索語はそれぞれ2文字以上にしてください"
    _filters, bad = parse_filters({"from": "昨日"}, UTC)
    assert bad is not None and bad.text() == "受付日（から）は 2026-11-24 のように書いてください"


def _history_of_a_worked_ticket(wd: WebDesk) -> str:
    number = make_ticket(wd.desk, subject="ログインできません")
    other = make_ticket(wd.desk, subject="ログインできません（重複）")
    now = datetime.now(UTC)
    with transaction(wd.desk.factory) as s:
        boss = s.get(StaffUser, wd.users["boss"])
        t = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        actions.assign(s, t, str(wd.users["agent"]), by=boss, now=now)
        actions.set_status(t, "pending", now, by=boss, pending_until=now + timedelta(days=2))
        duplicate = s.scalars(select(Ticket).where(Ticket.number == other)).one()
        actions.merge(s, duplicate, number, boss, now)
    return number


def test_an_english_reader_sees_the_history_in_english_and_a_japanese_reader_as_stored(
        sqlite_webdesk: WebDesk) -> None:
    number = _history_of_a_worked_ticket(sqlite_webdesk)
    with sqlite_webdesk.desk.factory() as s:
        t = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        stored = [e.what for e in events_of(s, [t.id])[t.id]]
    assert any(w.startswith("担当者: 未割当 → ") for w in stored), stored
    assert any(w.startswith("状態: ") and "（再通知 " in w for w in stored), stored
    assert any(w.startswith("統合: ") for w in stored), stored
    agent = sqlite_webdesk.sign_in("agent")
    japanese = agent.get(f"/tickets/{number}").text
    for w in stored:
        assert w in japanese, w
    agent.post("/me/locale", {"locale": "en"})
    page = agent.get(f"/tickets/{number}").text
    lines = re.findall(r'<span class="what">(.*?)</span>', page, re.S)
    assert len(lines) == len(stored), lines
    for line in lines:
        text = visible_text(line)
        # The only Japanese left is data: the staff members' names.
        assert not _JAPANESE.search(text.replace("佐藤 彩香", "").replace("鈴木 部長", "")), text
    joined = " | ".join(visible_text(line) for line in lines)
    assert "Assignee: Unassigned → " in joined, joined
    assert "State: " in joined and "(reminder " in joined, joined
    assert "Merge: " in joined and " merged into this ticket" in joined, joined
    problem = visible_text(agent.get("/search?q=あ").text)
    assert "Each search term needs at least 2 characters" in problem
    agent.post("/me/locale", {"locale": "ja"})
