"""One row per ticket, notes by their own text, merged tickets left out, and
``madoguchi search`` giving the web desk's results (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import typer
from sqlalchemy import text
from typer.testing import CliRunner

from madoguchi.search_cli import search_command
from madoguchi.ticketing import actions
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.lookup import ticket_by_number
from madoguchi.ticketing.search import search
from madoguchi.ticketing.search_filters import SearchFilters
from madoguchi.ticketing.vocabulary import TicketStatus
from tests.test_web_kit import Staff, WebDesk, make_ticket

pytest_plugins = ["tests.test_web_kit"]
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def _numbers(wd: WebDesk, q: str, **kw: object) -> list[str]:
    with wd.desk.factory() as s:
        return [h.ticket.number for h in search(s, q, **kw).hits]  # type: ignore[arg-type]


def _note(wd: WebDesk, number: str, text: str) -> None:
    with transaction(wd.desk.factory) as s:
        ticket = ticket_by_number(s, number, follow_merges=False)
        assert ticket is not None
        actions.add_note(s, ticket, None, text, NOW)


def test_a_ticket_with_many_matching_messages_is_one_row(webdesk: WebDesk, agent: Staff) -> None:
    number = make_ticket(webdesk.desk, subject="印刷の不具合", text="帳票の印刷で止まります")
    for i in range(5):
        _note(webdesk, number, f"印刷の件 その{i}")
    other = make_ticket(webdesk.desk, subject="別件", text="印刷できません")
    assert _numbers(webdesk, "印刷") == [other, number]
    page = agent.get("/search?q=印刷").text
    assert page.count(f'href="/tickets/{number}#m') == 1


def test_pages_of_tickets_do_not_repeat_a_ticket(webdesk: WebDesk) -> None:
    numbers = [make_ticket(webdesk.desk, text=f"共通の語句 その{i}") for i in range(5)]
    _note(webdesk, numbers[0], "共通の語句 を追記")  # the oldest ticket, newest match
    with webdesk.desk.factory() as s:
        first = search(s, "共通の語句", limit=3)
        rest = search(s, "共通の語句", before=first.next_before, limit=3)
    seen = [h.ticket.number for h in first.hits + rest.hits]
    assert seen == [numbers[0], *numbers[:0:-1]] and rest.next_before is None


def test_notes_count_by_their_own_text_and_merged_tickets_never_match(webdesk: WebDesk) -> None:
    noted = make_ticket(webdesk.desk, subject="請求書の再発行", text="請求書をお願いします")
    _note(webdesk, noted, "経理に確認中")
    assert _numbers(webdesk, "経理") == [noted]
    subject_only = make_ticket(webdesk.desk, subject="見積依頼", text="よろしくお願いします")
    _note(webdesk, subject_only, "折り返し電話する")
    assert _numbers(webdesk, "見積依頼") == [subject_only]  # by its mail, not by the note
    source = make_ticket(webdesk.desk, subject="容量不足の件", text="ディスク容量が足りません")
    target = make_ticket(webdesk.desk, subject="容量の件", text="追加のご連絡")
    with transaction(webdesk.desk.factory) as s:
        ticket = ticket_by_number(s, source, follow_merges=False)
        assert ticket is not None
        actions.merge(s, ticket, target, None, NOW)
    assert _numbers(webdesk, "容量不足") == [target]
    assert _numbers(webdesk, "統合しました") == [target]


def _cli(wd: WebDesk) -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main(ctx: typer.Context) -> None:
        ctx.obj = wd.desk.settings

    app.command("search")(search_command)
    return app


def test_the_command_line_gives_the_web_desks_results(webdesk: WebDesk) -> None:
    a = make_ticket(webdesk.desk, subject="CSV出力の文字化け", text="CSVが文字化けします")
    _note(webdesk, a, "CSVの件、再現しました")
    b = make_ticket(webdesk.desk, subject="請求書", text="CSVで送ってください")
    runner = CliRunner()
    r = runner.invoke(_cli(webdesk), ["search", "csv", "--format", "jsonl"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert [row["number"] for row in rows] == _numbers(webdesk, "csv") == [b, a]
    assert rows[0]["subject"] == "請求書" and "CSV" in rows[0]["snippet"]
    assert {"number", "subject", "snippet"} <= rows[1].keys()
    table = runner.invoke(_cli(webdesk), ["search", "文字化け"])
    assert table.exit_code == 0 and a in table.output and "1件" in table.output
    bad = runner.invoke(_cli(webdesk), ["search", "あ"])
    assert bad.exit_code == 2 and "2文字以上" in bad.output
    assert runner.invoke(_cli(webdesk), ["search", "csv", "--format", "xml"]).exit_code == 2


def test_a_filtered_search_fills_its_pages_across_rounds(webdesk: WebDesk) -> None:
    # A filtered round reads twice a page of matches (ticketing.search): here one open
    # ticket's six notes fill whole rounds, and a closed ticket's match is never shown.
    older = [make_ticket(webdesk.desk, text=f"共通の語句 その{i}") for i in range(3)]
    make_ticket(webdesk.desk, text="共通の語句 完了分", status=TicketStatus.CLOSED)
    busy = make_ticket(webdesk.desk, text="共通の語句 多い")
    for i in range(6):
        _note(webdesk, busy, f"共通の語句 メモ{i}")
    only_open = SearchFilters(status=TicketStatus.OPEN)
    with webdesk.desk.factory() as s:
        first = search(s, "共通の語句", limit=2, filters=only_open)
        rest = search(s, "共通の語句", before=first.next_before, limit=2, filters=only_open)
    assert [h.ticket.number for h in first.hits] == [busy, older[2]]
    assert [h.ticket.number for h in rest.hits] == [older[1], older[0]]
    assert rest.next_before is None


def test_the_newest_messages_judge_a_term_and_the_rest_are_read_as_it_needs(
    webdesk: WebDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ticketing.search: the first round reads the newest messages (a window of six here)
    # and how often the terms occur there says how the rest are read: newest first for a
    # frequent term, through the text indexes for a rare one. Either way the same tickets,
    # newest match first, page after page, across the window's edge.
    from madoguchi.ticketing import search as search_module
    from madoguchi.ticketing.dialect import dialect_of

    monkeypatch.setattr(type(dialect_of(webdesk.desk.engine)), "frequency_window", 6)
    monkeypatch.setattr(search_module, "_FREQUENT", 1 / 3)  # two of six: frequent
    rare = [make_ticket(webdesk.desk, text=f"見積書の再送付をお願いします {i}") for i in range(3)]
    edge = make_ticket(webdesk.desk, text="境界の語 古いほう")
    common = [make_ticket(webdesk.desk, text=f"よくある語 {i}") for i in range(9)]
    newest = make_ticket(webdesk.desk, text="境界の語 新しいほう よくある語")

    assert _numbers(webdesk, "見積書の再送付") == rare[::-1]  # none in the window
    assert _numbers(webdesk, "再送") == rare[::-1]  # two characters: the bigram index
    assert _numbers(webdesk, "境界の語") == [newest, edge]  # one in the window: rare
    assert _numbers(webdesk, "よくある語") == [newest, *common[::-1]]  # frequent
    with webdesk.desk.factory() as s:
        pages = [search(s, "見積書の再送付", limit=2)]
        pages.append(search(s, "見積書の再送付", before=pages[0].next_before, limit=2))
        pages.append(search(s, "よくある語", limit=4))
        pages.append(search(s, "よくある語", before=pages[2].next_before, limit=4))
        pages.append(search(s, "よくある語", before=pages[3].next_before, limit=4))
        if s.get_bind().dialect.name == "postgresql":  # the planner's own choice again
            assert s.execute(text("SHOW enable_seqscan")).scalar() == "on"
            assert s.execute(text("SHOW enable_bitmapscan")).scalar() == "on"
    assert [[h.ticket.number for h in p.hits] for p in pages] == [
        rare[:0:-1], rare[:1], [newest, *common[:5:-1]], common[5:1:-1], common[1::-1]]
    assert pages[1].next_before is None and pages[4].next_before is None
