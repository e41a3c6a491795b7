"""Search over subjects, mail text and FAX OCR text, in Japanese (no word spaces), on SQLite
(FTS5 trigram) and PostgreSQL (pg_trgm)."""

from __future__ import annotations

from sqlalchemy import select, text

from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import Channel, Flag, Message
from madoguchi.web.queries import search
from tests.test_web_kit import (
    Staff,
    WebDesk,
    ingest_mail,
    make_ticket,
    png,
)

pytest_plugins = ["tests.test_web_kit"]


def _numbers(wd: WebDesk, q: str) -> list[str]:
    with wd.desk.factory() as s:
        return [h.ticket.number for h in search(s, q).hits]


def test_a_japanese_word_is_found_inside_fax_ocr_text(webdesk: WebDesk, agent: Staff) -> None:
    fax = make_ticket(webdesk.desk, channel=Channel.FAX, flags=(Flag.UNREADABLE_FAX,),
                      page=png(), subject="FAX",
                      text="お世話になります。ライセンスキーの再発行を希望します")
    make_ticket(webdesk.desk, subject="ログインできません", text="パスワードを忘れました")
    page = agent.get("/search?q=ライセンス").text
    assert f'href="/tickets/{fax}#m' in page and "<mark>ライセンス</mark>" in page
    assert "ログインできません" not in page


def test_subjects_and_mail_text_are_searched_and_every_term_must_occur(
    webdesk: WebDesk,
) -> None:
    a = ingest_mail(webdesk.desk, subject="CSV出力の文字化け",
                    body="サポートサービス番号: 2031-0001-0008\n\n"
                         "エクスポートすると文字化けします。\n")
    b = make_ticket(webdesk.desk, subject="請求書の再発行", text="CSVで送ってください")
    assert _numbers(webdesk, "文字化け") == [a]
    assert sorted(_numbers(webdesk, "csv")) == sorted([a, b])  # ASCII: any case
    assert _numbers(webdesk, "CSV 請求書") == [b]
    assert _numbers(webdesk, "エクスポート 再発行") == []


def test_two_character_terms_are_found_below_trigram_length(webdesk: WebDesk) -> None:
    number = make_ticket(webdesk.desk, subject="質問", text="帳票の印刷で止まります")
    assert _numbers(webdesk, "帳票") == [number]
    assert _numbers(webdesk, "印刷 帳票") == [number]
    assert _numbers(webdesk, "印刷で止まる") == []


def test_like_wildcards_in_the_query_are_taken_literally(webdesk: WebDesk) -> None:
    plain = make_ticket(webdesk.desk, text="進捗は50%です")
    make_ticket(webdesk.desk, text="進捗は500です")
    assert _numbers(webdesk, "50%") == [plain]
    assert _numbers(webdesk, "_") == []
    assert _numbers(webdesk, '"引用"') == []


def test_the_index_follows_edits_and_deletions(webdesk: WebDesk) -> None:
    # The desk edits a message's text through the ORM (privacy erasure does):
    # its folded search_text follows (ticketing.search_index).
    number = make_ticket(webdesk.desk, text="旧い文面です")
    with transaction(webdesk.desk.factory) as s:
        for m in s.scalars(select(Message)):
            m.text = "新しい文面です"
    assert _numbers(webdesk, "旧い文面") == [] and _numbers(webdesk, "新しい文面") == [number]
    with transaction(webdesk.desk.factory) as s:
        s.execute(text("DELETE FROM messages"))
    assert _numbers(webdesk, "新しい文面") == []


def test_results_page_newest_first(webdesk: WebDesk) -> None:
    numbers = [make_ticket(webdesk.desk, text=f"共通の語句 その{i}") for i in range(7)]
    with webdesk.desk.factory() as s:
        first = search(s, "共通の語句", limit=4)
        assert [h.ticket.number for h in first.hits] == numbers[::-1][:4]
        rest = search(s, "共通の語句", before=first.next_before, limit=4)
        assert [h.ticket.number for h in rest.hits] == numbers[::-1][4:]
        assert rest.next_before is None


def test_the_search_page_explains_bad_queries_and_jumps_to_a_ticket_number(
    webdesk: WebDesk, agent: Staff
) -> None:
    number = make_ticket(webdesk.desk)
    assert "2文字以上" in agent.get("/search?q=あ").text
    assert "5個まで" in agent.get("/search?q=あい うえ おか きく けこ さし").text
    r = agent.get(f"/search?q={number.lower()}")
    assert r.status_code == 303 and r.headers["location"] == f"/tickets/{number}"
    assert "見つかりませんでした" in agent.get("/search?q=存在しない語").text
