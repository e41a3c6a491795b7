"""Search finds what Japanese staff type (SQLite and PostgreSQL): width, case and dashes
folded, addresses searchable, filters, two-character terms through an index, and the
customer lookup by any contact field or reading."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from typer.testing import CliRunner

from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import Message, StaffUser, Ticket
from madoguchi.ticketing.search import search
from madoguchi.ticketing.search_filters import SearchFilters
from madoguchi.ticketing.vocabulary import Channel, TicketStatus
from tests.test_search_cli import _cli
from tests.test_web_kit import Staff, WebDesk, make_ticket

pytest_plugins = ["tests.test_web_kit"]


def _numbers(wd: WebDesk, q: str, filters: SearchFilters | None = None) -> list[str]:
    with wd.desk.factory() as s:
        return [h.ticket.number for h in search(s, q, filters=filters).hits]


def test_width_case_and_dashes_are_folded_on_both_sides(webdesk: WebDesk) -> None:
    a = make_ticket(webdesk.desk, subject="CSV出力の件",
                    text="管理画面にログインできません。番号は２０３１－０００３です。")
    b = make_ticket(webdesk.desk, subject="別件", text="ﾊﾟｽﾜｰﾄﾞ 2031-0009 を再発行")
    make_ticket(webdesk.desk, subject="関係ない件", text="ログ を確認 2031")
    assert _numbers(webdesk, "ﾛｸﾞｲﾝ") == [a]
    assert _numbers(webdesk, "ＣＳＶ") == _numbers(webdesk, "csv") == [a]
    assert _numbers(webdesk, "2031-0003") == [a]
    assert _numbers(webdesk, "２０３１ー０００３") == [a]
    assert _numbers(webdesk, "パスワード") == [b]
    assert _numbers(webdesk, "２０３１－０００９") == [b]
    with webdesk.desk.factory() as s:
        hit = search(s, "ﾛｸﾞｲﾝ").hits[0]
        assert hit.snippet[1] == "ログイン"  # the original words marked, not the folded
        hit = search(s, "2031-0003").hits[0]
        assert hit.snippet[1] == "２０３１－０００３"
        assert hit.snippet[0].endswith("番号は") and hit.snippet[2].startswith("です")


def test_senders_and_recipients_addresses_are_searched(webdesk: WebDesk) -> None:
    a = make_ticket(webdesk.desk, text="本文", sender="Yamada.Taro@Kokyaku.example.jp")
    b = make_ticket(webdesk.desk, text="本文")
    with transaction(webdesk.desk.factory) as s:
        ticket = s.scalars(select(Ticket).where(Ticket.number == b)).one()
        m = s.scalars(select(Message).where(Message.ticket_id == ticket.id)).one()
        m.cc = ["keiri@torihiki.example.jp"]
    assert _numbers(webdesk, "yamada.taro@kokyaku") == [a]
    assert _numbers(webdesk, "ｋｅｉｒｉ@torihiki") == [b]
    with webdesk.desk.factory() as s:
        assert search(s, "kokyaku.example").hits[0].snippet[1] == "Kokyaku.example"


def test_filters_narrow_by_the_tickets_fields(webdesk: WebDesk) -> None:
    with webdesk.desk.factory() as s:
        agent_id = s.scalars(select(StaffUser.id).where(StaffUser.login == "agent")).one()
    old = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)
    a = make_ticket(webdesk.desk, text="容量の不足", status=TicketStatus.CLOSED, received_at=old)
    b = make_ticket(webdesk.desk, text="容量の不足", channel=Channel.FAX, assignee_id=agent_id)
    c = make_ticket(webdesk.desk, text="容量の不足")
    assert _numbers(webdesk, "容量") == [c, b, a]
    assert _numbers(webdesk, "容量", SearchFilters(status=TicketStatus.CLOSED)) == [a]
    assert _numbers(webdesk, "容量", SearchFilters(channel=Channel.FAX)) == [b]
    assert _numbers(webdesk, "容量", SearchFilters(assignee="agent")) == [b]
    assert _numbers(webdesk, "容量", SearchFilters(assignee="none")) == [c, a]
    cut = old + timedelta(days=1)
    assert _numbers(webdesk, "容量", SearchFilters(received_before=cut)) == [a]
    assert _numbers(webdesk, "容量", SearchFilters(received_from=cut)) == [c, b]
    assert _numbers(webdesk, "容量", SearchFilters(product="製品なし")) == []


def test_the_search_page_filters_and_refuses_bad_filters_plainly(
    webdesk: WebDesk, agent: Staff
) -> None:
    old = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)
    a = make_ticket(webdesk.desk, subject="印刷の件", text="印刷できません", received_at=old)
    b = make_ticket(webdesk.desk, subject="印刷の件", text="印刷できません",
                    status=TicketStatus.PENDING)
    page = agent.get("/search?q=印刷&status=pending").text
    assert f"/tickets/{b}#m" in page and f"/tickets/{a}#m" not in page
    page = agent.get("/search?q=印刷&from=2026-01-10&to=２０２６－０１－１０").text
    assert f"/tickets/{a}#m" in page and f"/tickets/{b}#m" not in page
    for bad, says in (("status=gone", "状態"), ("channel=note", "受付経路"),
                      ("from=きのう", "受付日"), ("from=2026-02-01&to=2026-01-01", "受付日")):
        r = agent.get(f"/search?q=印刷&{bad}")
        assert r.status_code == 400 and says in r.text, bad
    options = agent.get("/search").text
    assert 'value="phone"' in options and 'value="note"' not in options


def test_two_character_terms_are_found_through_the_bigram_index(webdesk: WebDesk) -> None:
    a = make_ticket(webdesk.desk, subject="件名", text="請求書を再送してください")
    make_ticket(webdesk.desk, subject="件名", text="請け負った求人")
    b = make_ticket(webdesk.desk, subject="件名", text="Windows OS の更新")
    assert _numbers(webdesk, "請求") == [a]
    assert _numbers(webdesk, "ＯＳ") == [b]
    with webdesk.desk.factory() as s:
        if s.get_bind().dialect.name != "postgresql":
            return  # SQLite reads the messages newest first for it (README)
        s.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(r[0] for r in s.execute(text(
            "EXPLAIN SELECT id FROM messages WHERE "
            "madoguchi_bigrams(messages.search_text) @> ARRAY['請求']::text[]")))
        assert "ix_messages_search_bigrams" in plan


def test_the_command_line_takes_the_same_filters(webdesk: WebDesk) -> None:
    a = make_ticket(webdesk.desk, text="障害の報告", status=TicketStatus.CLOSED)
    b = make_ticket(webdesk.desk, text="障害の報告")
    runner = CliRunner()
    r = runner.invoke(_cli(webdesk), ["search", "障害", "--format", "jsonl",
                                      "--status", "closed"])
    assert r.exit_code == 0, r.output
    assert [json.loads(line)["number"] for line in r.output.splitlines()] == [a]
    r = runner.invoke(_cli(webdesk), ["search", "障害", "--format", "jsonl",
                                      "--assignee", "none", "--channel", "email"])
    assert [json.loads(line)["number"] for line in r.output.splitlines()] == [b, a]
    r = runner.invoke(_cli(webdesk), ["search", "障害", "--to", "someday"])
    assert r.exit_code == 2 and "受付日" in r.output


def test_customers_are_found_by_any_contact_field_and_by_reading(
    webdesk: WebDesk, agent: Staff
) -> None:
    sakura, minato = "株式会社さくら商事", "有限会社みなと製作所"
    for q, company in (("やまだ", sakura), ("ヤマダ", sakura), ("ﾔﾏﾀﾞ", sakura),
                       ("山田太郎", sakura), ("０３－１２３４－５６７８", sakura),
                       ("03-1234-5679", sakura),  # the FAX number
                       ("sato@minato", minato), ("ＳＡＴＯ＠ＭＩＮＡＴＯ", minato),
                       ("２０３１－０００２－０００７", minato), ("ミナト", minato),
                       ("さとう いちろう", minato)):
        page = agent.get(f"/customers?q={q}").text
        assert company in page, q
        other = minato if company == sakura else sakura
        assert other not in page, q
    assert "株式会社" not in agent.get("/customers?q=存在しない名前").text.split("</h1>")[-1]
