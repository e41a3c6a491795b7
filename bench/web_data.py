"""The 1 M-ticket desk ``bench/web.py`` and ``bench/live.py`` measure, built at the schema's head.

The database is created and migrated to head while empty (so every column,
index and function is the migrations' own); the secondary indexes of the
four big tables (those that back no constraint) are set aside, the rows are
generated inside the server with ``INSERT ... SELECT FROM generate_series``,
and the indexes are built again from their saved definitions
(``pg_get_indexdef``), as a bulk load does. Every column the desk reads is
filled the way the application would fill it:

- ``messages.search_text``: ``ticketing.search_index.message_text`` of the
  row (subject, text, sender, sender name, each folded by
  ``rules.search_text.fold``, one a line), built in SQL from the same picks
  of the *folded* phrases, so that 5 M rows need no Python pass (migration
  0014's fill would take most of an hour); ``tests/test_bench_web_data.py``
  checks every row of a small build against ``message_text``;
- ``customers.search_key``, ``contacts.search_key``: ``customer_key`` and
  ``contact_key`` in Python (5,000 rows each);
- the conversation: ``state`` as migration 0009 reads the statuses (closed,
  pending, open unanswered = new, ``response_due`` = the first response
  due), then a third of the open tickets answered and replied to by the
  customer (``customer_replied``, next response due), half the pending ones
  ``waiting``; four history lines a ticket (``ticket_events``).

The data: ``tickets`` tickets (95% closed, 3% open, 2% pending, received over
three years, a fifth by FAX, 3% flagged), ``per_ticket`` messages each (mail
and FAX text of 100-250 characters drawn from Japanese support phrases, a
rare phrase in one message in 2,000), 5,000 customers with a contract and a
contact each. The database is created with LC_CTYPE C.UTF-8, under which
pg_trgm takes kana and kanji into trigrams.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

import psycopg

from madoguchi.ticketing.db import upgrade
from madoguchi.ticketing.models import Contact, Customer
from madoguchi.ticketing.rules.search_text import fold
from madoguchi.ticketing.search_index import contact_key, customer_key

PHRASES = [
    "いつもお世話になっております。", "管理画面にログインできなくなりました。",
    "ライセンスキーの再発行をお願いします。", "CSV出力で文字化けが発生します。",
    "バージョンアップの手順を教えてください。", "サーバーの移行を予定しています。",
    "メールの送信ができません。", "パスワードを忘れてしまいました。",
    "ユーザー数を追加したいと考えております。", "帳票の印刷時にエラーが表示されます。",
    "添付ファイルがダウンロードできません。", "動作環境について確認させてください。",
    "エラーメッセージの画面を添付いたします。", "至急ご確認いただけますでしょうか。",
    "先日の件について追加で質問があります。", "設定画面の項目が表示されません。",
    "データのバックアップ方法を教えてください。", "操作手順書の最新版はありますか。",
    "アクセス権限の設定がうまくいきません。", "検索結果が正しく表示されません。",
    "スケジュールの同期に失敗します。", "通知メールが届かなくなりました。",
    "ご回答ありがとうございました。", "引き続きよろしくお願いいたします。",
]
RARE = "見積書の再送付をお願いできますか。"
CUSTOMERS = 5000
BIG_TABLES = ("tickets", "messages", "ticket_events", "ticket_flags")


def _literal(text: str, folded: bool) -> str:
    """``text`` (folded when asked) as an SQL string literal."""
    value = fold(text) if folded else text
    return "'" + value.replace("'", "''") + "'"


def _phrases_sql(seed_expr: str, count: int, folded: bool = False) -> str:
    """SQL text: ``count`` phrases picked by hashing ``seed_expr``, joined (folded if asked)."""
    array = "ARRAY[" + ",".join(_literal(p, folded) for p in PHRASES) + "]"
    picks = [
        f"({array})[1 + abs(hashint4(({seed_expr}) * {7 + 13 * i} + {i})) % {len(PHRASES)}]"
        for i in range(count)
    ]
    return " || ".join(picks)


def message_fields_sql(per_ticket: int, folded: bool) -> dict[str, str]:
    """The SQL of a generated message's subject, text, sender and sender name (row ``g``)."""
    ticket_of = f"((g - 1) / {per_ticket} + 1)"
    contact = f"({ticket_of} % {CUSTOMERS} + 1)"
    return {
        "subject": _phrases_sql(ticket_of, 1, folded),
        "text": f"{_literal('サポートサービス番号: ', folded)} || lpad({contact}::text, 12, '0')"
                f" || E'\\n' || {_phrases_sql('g', 5, folded)}"
                f" || CASE WHEN g % 2000 = 7 THEN {_literal(RARE, folded)} ELSE '' END",
        "sender": f"{_literal('contact', folded)} || {contact} || "
                  f"{_literal('@bench.example.jp', folded)}",
        "sender_name": f"{_literal('担当 ', folded)} || {contact}",
    }


def _fill_directory(conn: psycopg.Connection) -> None:
    """The customer lookup's keys, by the desk's own rules (``search_index``)."""
    customers = conn.execute("SELECT id, company, department FROM customers").fetchall()
    contacts = conn.execute("SELECT id, name, phone, fax FROM contacts").fetchall()
    customer_keys = [customer_key(Customer(company=c, department=d)) for _, c, d in customers]
    contact_keys = [contact_key(Contact(name=n, phone=p, fax=f)) for _, n, p, f in contacts]
    conn.execute("UPDATE customers SET search_key = u.k FROM unnest(%s::int[], %s::text[]) "
                 "u(id, k) WHERE customers.id = u.id", ([r[0] for r in customers], customer_keys))
    conn.execute("UPDATE contacts SET search_key = u.k FROM unnest(%s::int[], %s::text[]) "
                 "u(id, k) WHERE contacts.id = u.id", ([r[0] for r in contacts], contact_keys))


def _statements(tickets: int, per_ticket: int) -> dict[str, str]:
    per_year = (tickets + 2) // 3
    received = "TIMESTAMPTZ '2024-01-01 00:00+09' + (g * interval '94 seconds')"
    status = ("CASE WHEN g % 100 < 95 THEN 'closed' WHEN g % 100 < 98 THEN 'open' "
              "ELSE 'pending' END")
    # Migration 0009's reading of the statuses, then the conversation's: a third of the
    # open tickets answered and replied to (next response due), half the pending waiting.
    state = ("CASE WHEN g % 100 < 95 THEN 'closed' "
             "WHEN g % 100 < 98 THEN CASE WHEN g % 3 = 0 THEN 'customer_replied' ELSE 'new' END "
             "ELSE CASE WHEN g % 2 = 0 THEN 'waiting' ELSE 'pending' END END")
    replied = "g % 100 BETWEEN 95 AND 97 AND g % 3 = 0"
    plain, folded = message_fields_sql(per_ticket, False), message_fields_sql(per_ticket, True)
    ticket_of = f"((g - 1) / {per_ticket} + 1)"
    at = f"TIMESTAMPTZ '2024-01-01 00:00+09' + ({ticket_of} * interval '94 seconds') " \
         f"+ (g % {per_ticket}) * interval '1 hour'"
    return {
        "customers, contracts, contacts": f"""
        INSERT INTO customers (id, company, department, address)
        SELECT g, '株式会社ベンチ' || g, '情報システム部', '東京都千代田区' || g
        FROM generate_series(1, {CUSTOMERS}) g;
        INSERT INTO contracts (id, customer_id, support_number, product, environment,
                               period_start, period_end)
        SELECT g, g, lpad(g::text, 12, '0'), 'ChatLuck', '', DATE '2024-01-01',
               DATE '2027-12-31'
        FROM generate_series(1, {CUSTOMERS}) g;
        INSERT INTO contacts (id, customer_id, name, phone, fax)
        SELECT g, g, '担当 ' || g, '03-0000-' || g, '' FROM generate_series(1, {CUSTOMERS}) g;
        INSERT INTO contact_emails (contact_id, email)
        SELECT g, 'contact' || g || '@bench.example.jp' FROM generate_series(1, {CUSTOMERS}) g;
        INSERT INTO contract_contacts (contract_id, contact_id)
        SELECT g, g FROM generate_series(1, {CUSTOMERS}) g;""",
        "tickets": f"""
        INSERT INTO tickets (id, number, status, state, channel, subject, support_number,
                             customer_id, contract_id, contact_id, received_at, work_starts_at,
                             first_response_due, first_responded_at, closed_at, response_due,
                             customer_replied_at, next_response_due)
        SELECT g,
               'T-' || (2024 + (g - 1) / {per_year}) || '-' ||
                   lpad((((g - 1) % {per_year}) + 1)::text, 6, '0'),
               {status}, {state},
               CASE WHEN g % 5 = 0 THEN 'fax' ELSE 'email' END,
               {_phrases_sql("g", 1)},
               lpad(((g % {CUSTOMERS}) + 1)::text, 12, '0'),
               (g % {CUSTOMERS}) + 1, (g % {CUSTOMERS}) + 1, (g % {CUSTOMERS}) + 1,
               {received}, {received}, {received} + interval '8 hours',
               CASE WHEN g % 100 < 95 OR {replied} THEN {received} + interval '3 hours' END,
               CASE WHEN g % 100 < 95 THEN {received} + interval '2 days' END,
               CASE WHEN {replied} THEN {received} + interval '1 day 8 hours'
                    WHEN g % 100 >= 95 THEN {received} + interval '8 hours' END,
               CASE WHEN {replied} THEN {received} + interval '1 day' END,
               CASE WHEN {replied} THEN {received} + interval '1 day 8 hours' END
        FROM generate_series(1, {tickets}) g;
        INSERT INTO ticket_flags (ticket_id, flag)
        SELECT g, (ARRAY['unregistered_sender','contract_expired','unknown_support_number',
                         'unreadable_fax'])[1 + g % 4]
        FROM generate_series(1, {tickets}) g WHERE g % 33 = 0;""",
        "messages (with their folded search text)": f"""
        INSERT INTO messages (id, ticket_id, direction, channel, message_id, "references",
                              sender, sender_name, recipients, cc, subject, date, received_at,
                              text, search_text)
        SELECT g, {ticket_of},
               CASE WHEN g % {per_ticket} = 2 THEN 'out' ELSE 'in' END,
               CASE WHEN {ticket_of} % 5 = 0 THEN 'fax' ELSE 'email' END,
               'bench-' || g || '@bench.example.jp', '[]'::json,
               {plain["sender"]}, {plain["sender_name"]}, '[]'::json, '[]'::json,
               {plain["subject"]}, {at}, {at}, {plain["text"]},
               concat_ws(E'\\n', {folded["subject"]}, {folded["text"]}, {folded["sender"]},
                         {folded["sender_name"]})
        FROM generate_series(1, {tickets * per_ticket}) g;""",
        "history (4 lines a ticket)": f"""
        INSERT INTO ticket_events (ticket_id, at, by, kind, what)
        SELECT t, TIMESTAMPTZ '2024-01-01 00:00+09' + (t * interval '94 seconds')
                   + k * interval '2 hours',
               CASE WHEN k = 0 THEN 'madoguchi' ELSE '担当 ' || (t % 20) END,
               (ARRAY['state', 'assignee', 'state', 'flag'])[k + 1],
               (ARRAY['状態: 新規 → 対応中', '担当者: 未割当 → 担当 ' || (t % 20),
                      '状態: 対応中 → 回答済・返信待ち', 'フラグ: 至急'])[k + 1]
        FROM generate_series(1, {tickets}) t, generate_series(0, 3) k;""",
    }


def _set_aside_indexes(conn: psycopg.Connection) -> list[str]:
    """Drop the big tables' indexes that back no constraint; their definitions, to build again."""
    rows = conn.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class t ON t.oid = i.indrelid WHERE t.relname = ANY(%s) AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) ORDER BY 1",
        (list(BIG_TABLES),)).fetchall()
    for name, _ in rows:
        conn.execute(f'DROP INDEX "{name}"')  # type: ignore[arg-type]
    conn.commit()
    return [definition for _, definition in rows]


def _build_indexes(admin_url: str, db: str, definitions: list[str]) -> None:
    """The saved indexes built again, on two connections (the GIN builds use one core each)."""
    pending = sorted(definitions, key=lambda d: "USING gin" not in d)  # the long ones first
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        with psycopg.connect(f"{admin_url}/{db}", autocommit=True) as conn:
            conn.execute("SET maintenance_work_mem = '1GB'")
            while True:
                with lock:
                    if not pending or errors:
                        return
                    definition = pending.pop(0)
                try:
                    conn.execute(definition)  # type: ignore[arg-type]
                except BaseException as exc:  # reported after the join
                    errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def build(admin_url: str, db: str, tickets: int, per_ticket: int) -> dict[str, float]:
    """Create ``db`` (dropped first), migrate it to head, fill it; the seconds of each step."""
    timings: dict[str, float] = {}

    def step(name: str, run: Callable[[], object]) -> None:
        started = time.perf_counter()
        run()
        timings[name] = time.perf_counter() - started
        print(f"# {name}: {timings[name]:.1f} s", file=sys.stderr, flush=True)

    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')  # type: ignore[arg-type]
        admin.execute(  # type: ignore[arg-type]
            f"CREATE DATABASE \"{db}\" TEMPLATE template0 ENCODING 'UTF8' "
            "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'")
    step("migrations to head (empty)",
         lambda: upgrade(f"{admin_url.replace('postgresql://', 'postgresql+psycopg://', 1)}/{db}"))
    with psycopg.connect(f"{admin_url}/{db}") as conn:
        definitions = _set_aside_indexes(conn)
        conn.execute("SET synchronous_commit = off")
        for name, sql in _statements(tickets, per_ticket).items():
            def run(sql: str = sql) -> None:
                conn.execute(sql)  # type: ignore[arg-type]
                conn.commit()
            step(f"load: {name}", run)
        _fill_directory(conn)
        for table in ("customers", "contracts", "contacts", "contact_emails", "tickets",
                      "messages", "ticket_events"):
            conn.execute(  # type: ignore[arg-type]
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))")
        conn.commit()
    step(f"indexes ({len(definitions)}, built after the load)",
         lambda: _build_indexes(admin_url, db, definitions))
    with psycopg.connect(f"{admin_url}/{db}", autocommit=True) as conn:
        step("VACUUM ANALYZE", lambda: conn.execute("VACUUM ANALYZE"))
    return timings
