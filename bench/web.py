"""How fast the web desk answers with a million tickets on PostgreSQL.

    .venv/bin/python bench/web.py > bench/results/web.txt

Creates the database ``madoguchi_bench_web`` (or --db; dropped first if it exists, and
dropped again at the end unless --keep) on the PostgreSQL at --admin-url,
migrates it to revision 0001, fills it inside the server with
``INSERT ... SELECT FROM generate_series`` (generated data, not the
pipeline's slow path), then migrates to head so that 0002 builds the queue
and trigram search indexes over the loaded rows and 0009 reads the tickets'
states, as an upgrade of a live desk would; then a third of the open tickets
become customer_replied (next response due) and every ticket gets four
history lines (``ticket_events``). The database is created with LC_CTYPE
C.UTF-8, under which pg_trgm takes kana and kanji into trigrams.

The data: --tickets tickets (95% closed, 3% open, 2% pending, received over
three years, a fifth by FAX, 3% flagged), --messages-per-ticket messages each
(mail and FAX text of 100-250 characters drawn from Japanese support
phrases), 5,000 customers with a contract and a contact each.

Then the desk is served by uvicorn on a loopback port in this process and
signed in to; each page is fetched --requests times after a warm-up, over
HTTP with keep-alive, and the figures are wall-clock milliseconds per
request, server and rendering included:

- queue, first page: the default view (not closed), the soonest deadline still open
  first (first response or next response)
- queue, deep page: the page after a cursor taken at random in the queue
- ticket: a random ticket with its whole thread
- search, common word: ライセンス (in about one message in five)
- search, rare phrase: 見積書の再送付 (in one message in 2,000)
- queue, flag filter: open tickets flagged unreadable_fax (under 1% of them)
- search, 2 chars, rare: 再送, two characters, below trigram length, in one
  message in 2,000: the bigram GIN of migration 0014 narrows it
- search, 2 chars, common: 印刷 (in about one message in five)
- search, full width: ＣＳＶ出力 typed full width, found as CSV出力 (folded)
- search, filtered: ライセンス among open tickets (status=open) only
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from urllib.parse import quote, urlsplit

import psycopg

from madoguchi.config import load_settings
from madoguchi.config.web import WebSettings
from madoguchi.ticketing.db import upgrade
from madoguchi.web.auth import hash_password
from madoguchi.web_server import WebServer

DB = "madoguchi_bench_web"
PASSWORD = "bench password 1234"
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
COMMON_TERM, RARE_TERM, SHORT_RARE_TERM = "ライセンス", "見積書の再送付", "再送"
SHORT_COMMON_TERM, WIDE_TERM = "印刷", "ＣＳＶ出力"


def _phrases_sql(seed_expr: str, count: int) -> str:
    """SQL text: ``count`` phrases picked by hashing ``seed_expr``, joined."""
    array = "ARRAY[" + ",".join("'" + p + "'" for p in PHRASES) + "]"
    picks = [
        f"({array})[1 + abs(hashint4(({seed_expr}) * {7 + 13 * i} + {i})) % {len(PHRASES)}]"
        for i in range(count)
    ]
    return " || ".join(picks)


def load(conn: psycopg.Connection, tickets: int, per_ticket: int) -> dict[str, float]:
    timings: dict[str, float] = {}

    def step(name: str, sql: str) -> None:
        started = time.perf_counter()
        conn.execute(sql)  # type: ignore[arg-type]
        conn.commit()
        timings[name] = time.perf_counter() - started
        print(f"# {name}: {timings[name]:.1f} s", file=sys.stderr, flush=True)

    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute("SET synchronous_commit = off")
    customers = 5000
    step("customers, contracts, contacts", f"""
        INSERT INTO customers (id, company, department, address)
        SELECT g, '株式会社ベンチ' || g, '情報システム部', '東京都千代田区' || g
        FROM generate_series(1, {customers}) g;
        INSERT INTO contracts (id, customer_id, support_number, product, environment,
                               period_start, period_end)
        SELECT g, g, lpad(g::text, 12, '0'), 'ChatLuck', '', DATE '2024-01-01',
               DATE '2027-12-31'
        FROM generate_series(1, {customers}) g;
        INSERT INTO contacts (id, customer_id, name, phone, fax)
        SELECT g, g, '担当 ' || g, '03-0000-' || g, '' FROM generate_series(1, {customers}) g;
        INSERT INTO contact_emails (contact_id, email)
        SELECT g, 'contact' || g || '@bench.example.jp' FROM generate_series(1, {customers}) g;
        INSERT INTO contract_contacts (contract_id, contact_id)
        SELECT g, g FROM generate_series(1, {customers}) g;
    """)
    per_year = (tickets + 2) // 3
    received = "TIMESTAMPTZ '2024-01-01 00:00+09' + (g * interval '94 seconds')"
    status = "CASE WHEN g % 100 < 95 THEN 'closed' WHEN g % 100 < 98 THEN 'open' " \
             "ELSE 'pending' END"
    step("tickets", f"""
        INSERT INTO tickets (id, number, status, channel, subject, support_number,
                             customer_id, contract_id, contact_id, received_at, work_starts_at,
                             first_response_due, first_responded_at, closed_at)
        SELECT g,
               'T-' || (2024 + (g - 1) / {per_year}) || '-' ||
                   lpad((((g - 1) % {per_year}) + 1)::text, 6, '0'),
               {status},
               CASE WHEN g % 5 = 0 THEN 'fax' ELSE 'email' END,
               {_phrases_sql("g", 1)},
               lpad(((g % {customers}) + 1)::text, 12, '0'),
               (g % {customers}) + 1, (g % {customers}) + 1, (g % {customers}) + 1,
               {received}, {received}, {received} + interval '8 hours',
               CASE WHEN g % 100 < 95 THEN {received} + interval '3 hours' END,
               CASE WHEN g % 100 < 95 THEN {received} + interval '2 days' END
        FROM generate_series(1, {tickets}) g;
        INSERT INTO ticket_flags (ticket_id, flag)
        SELECT g, (ARRAY['unregistered_sender','contract_expired','unknown_support_number',
                         'unreadable_fax'])[1 + g % 4]
        FROM generate_series(1, {tickets}) g WHERE g % 33 = 0;
    """)
    total = tickets * per_ticket
    ticket_of = f"((g - 1) / {per_ticket} + 1)"
    step("messages", f"""
        INSERT INTO messages (id, ticket_id, direction, channel, message_id, "references",
                              sender, sender_name, recipients, cc, subject, date, received_at,
                              text)
        SELECT g, {ticket_of},
               CASE WHEN g % {per_ticket} = 2 THEN 'out' ELSE 'in' END,
               CASE WHEN {ticket_of} % 5 = 0 THEN 'fax' ELSE 'email' END,
               'bench-' || g || '@bench.example.jp', '[]'::json,
               'contact' || ({ticket_of} % {customers} + 1) || '@bench.example.jp',
               '担当 ' || ({ticket_of} % {customers} + 1), '[]'::json, '[]'::json,
               {_phrases_sql(ticket_of, 1)},
               TIMESTAMPTZ '2024-01-01 00:00+09' + ({ticket_of} * interval '94 seconds')
                   + (g % {per_ticket}) * interval '1 hour',
               TIMESTAMPTZ '2024-01-01 00:00+09' + ({ticket_of} * interval '94 seconds')
                   + (g % {per_ticket}) * interval '1 hour',
               'サポートサービス番号: ' || lpad(({ticket_of} % {customers} + 1)::text, 12, '0')
                   || E'\\n' || {_phrases_sql("g", 5)}
                   || CASE WHEN g % 2000 = 7 THEN '{RARE}' ELSE '' END
        FROM generate_series(1, {total}) g;
    """)
    for table in ("customers", "contracts", "contacts", "contact_emails", "tickets",
                  "messages"):
        conn.execute(  # type: ignore[arg-type]
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"(SELECT max(id) FROM {table}))"
        )
    conn.commit()
    return timings


def conversation(conn: psycopg.Connection, tickets: int) -> dict[str, float]:
    """The conversation's data over the loaded tickets: a third of the open ones answered
    and replied to by the customer (next response due), and four history lines a ticket."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    conn.execute("""
        UPDATE tickets SET state = 'customer_replied', first_responded_at = received_at
                + interval '3 hours', customer_replied_at = received_at + interval '1 day',
            next_response_due = received_at + interval '1 day 8 hours',
            response_due = received_at + interval '1 day 8 hours'
        WHERE status = 'open' AND id % 3 = 0;
        UPDATE tickets SET state = 'waiting' WHERE status = 'pending' AND id % 2 = 0;
    """)
    conn.execute(f"""
        INSERT INTO ticket_events (ticket_id, at, by, kind, what)
        SELECT t, TIMESTAMPTZ '2024-01-01 00:00+09' + (t * interval '94 seconds')
                   + k * interval '2 hours',
               CASE WHEN k = 0 THEN 'madoguchi' ELSE '担当 ' || (t % 20) END,
               (ARRAY['state', 'assignee', 'state', 'flag'])[k + 1],
               (ARRAY['状態: 新規 → 対応中', '担当者: 未割当 → 担当 ' || (t % 20),
                      '状態: 対応中 → 回答済・返信待ち', 'フラグ: 至急'])[k + 1]
        FROM generate_series(1, {tickets}) t, generate_series(0, 3) k;
    """)  # type: ignore[arg-type]
    conn.commit()
    timings["conversation (states, 4 history lines a ticket)"] = time.perf_counter() - started
    return timings


class Client:
    """One signed-in staff browser: HTTP/1.1 keep-alive, the session cookie, no redirects."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        self.cookie = ""

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed the idle keep-alive connection as this request
            # went out (its keep_alive_seconds): a browser sends it again on a
            # new connection, and so does this (the time it takes counts).
            if method != "GET":
                raise
            self.conn.close()
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        cookie = response.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        return response.status, text

    def sign_in(self, login: str) -> None:
        _, page = self.request("GET", "/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token
        status, _ = self.request("POST", "/login", f"login={login}&password={quote(PASSWORD)}"
                                 f"&csrf={quote(token.group(1))}&next=/queue")
        assert status == 303, status


def timed(run: Callable[[int], object], requests: int, warm_up: int = 10
          ) -> tuple[float, float, list[float]]:
    """p50 and p95 in ms of ``requests`` calls after ``warm_up`` ones, and the sorted samples."""
    for i in range(warm_up):
        run(-1 - i)
    samples = []
    for i in range(requests):
        started = time.perf_counter()
        run(i)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], samples


def measure(name: str, fetch: Callable[[int], tuple[int, str]], requests: int,
            check: Callable[[str], bool]) -> str:
    def checked(i: int) -> None:
        status, page = fetch(i)
        assert status == 200 and check(page), (name, status, page[:300])

    p50, p95, samples = timed(checked, requests)
    return f"{name:<26} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   max {samples[-1]:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--messages-per-ticket", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--db", default=DB, help=f"The database's name (default {DB}).")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    parser.add_argument("--reuse", action="store_true",
                        help="Measure a database kept by an earlier --keep run.")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    db = args.db
    url = f"{args.admin_url.replace('postgresql://', 'postgresql+psycopg://', 1)}/{db}"

    load_timings: dict[str, float] = {}
    if not args.reuse:
        with psycopg.connect(f"{args.admin_url}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')  # type: ignore[arg-type]
            admin.execute(  # type: ignore[arg-type]
                f"CREATE DATABASE \"{db}\" TEMPLATE template0 ENCODING 'UTF8' "
                "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
            )
        upgrade(url, "0001")
        with psycopg.connect(f"{args.admin_url}/{db}") as conn:
            load_timings = load(conn, args.tickets, args.messages_per_ticket)
        started = time.perf_counter()
        upgrade(url, "0013")  # 0002: queue and trigram indexes over the loaded rows
        load_timings["migrations 0002-0013 (indexes, states)"] = time.perf_counter() - started
        started = time.perf_counter()
        upgrade(url)  # 0014: folded search_text filled, its trigram and bigram GIN built
        load_timings["migrations 0014-head (folded search text, bigrams)"] = \
            time.perf_counter() - started
        with psycopg.connect(f"{args.admin_url}/{db}") as conn:
            load_timings.update(conversation(conn, args.tickets))
        with psycopg.connect(f"{args.admin_url}/{db}", autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
    with psycopg.connect(f"{args.admin_url}/{db}") as conn:
        # An upsert: a kept database's sessions (--reuse) still refer to the user.
        conn.execute(
            "INSERT INTO staff_users (login, name, email, password_hash, role, active) "
            "VALUES ('bench', 'ベンチ 担当', '', %s, 'agent', true) ON CONFLICT (login) "
            "DO UPDATE SET password_hash = excluded.password_hash", (hash_password(PASSWORD),)
        )
        conn.commit()
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[arg-type,index]
                  for t in ("tickets", "messages")}
        active = conn.execute("SELECT response_due, id FROM tickets "
                              "WHERE status <> 'closed' AND response_due IS NOT NULL"
                              ).fetchall()
        numbers = [r[0] for r in conn.execute(
            "SELECT number FROM tickets TABLESAMPLE SYSTEM (1)").fetchall()]
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))"
                            ).fetchone()[0]  # type: ignore[index]
        version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        indexes = conn.execute(
            "SELECT c.relname, pg_size_pretty(pg_relation_size(c.oid)) FROM pg_class c "
            "WHERE c.relname LIKE 'ix_messages_search%' OR c.relname = 'messages' "
            "ORDER BY c.relname").fetchall()

    with TemporaryDirectory() as tmp:
        settings = load_settings(None, database_url=url, storage_dir=Path(tmp) / "storage",
                                 sources=[], log_level="WARNING")
        web = WebSettings(secret_key_file=Path(tmp) / "secret", send_outbox_after_reply=False)
        server = WebServer(settings, web=web, host="127.0.0.1", port=0).start()
        import logging

        logging.getLogger("uvicorn.access").disabled = True
        try:
            client = Client(server.url)
            client.sign_in("bench")

            def deep(_i: int) -> tuple[int, str]:
                due, tid = rng.choice(active)
                cursor = f"{round(due.timestamp() * 1_000_000)}.{tid}"
                return client.request("GET", f"/queue?after={cursor}")

            lines = [
                measure("queue, first page", lambda _i: client.request("GET", "/queue"),
                        args.requests, lambda p: p.count('class="number"') == 50),
                measure("queue, deep page", deep, args.requests,
                        lambda p: '<table class="queue">' in p),
                measure("queue, flag filter", lambda _i: client.request(
                    "GET", "/queue?flag=unreadable_fax"), args.requests,
                    lambda p: p.count('class="number"') == 50),
                measure("ticket", lambda _i: client.request(
                    "GET", f"/tickets/{rng.choice(numbers)}"), args.requests,
                    lambda p: p.count('class="msg ') == args.messages_per_ticket),
                measure("search, common word", lambda _i: client.request(
                    "GET", f"/search?q={quote(COMMON_TERM)}"), args.requests,
                    lambda p: "<mark>" in p),
                measure("search, rare phrase", lambda _i: client.request(
                    "GET", f"/search?q={quote(RARE_TERM)}"), args.requests,
                    lambda p: "<mark>" in p),
                # Below trigram length: the bigram GIN narrows it (migration 0014).
                measure("search, 2 chars, rare", lambda _i: client.request(
                    "GET", f"/search?q={quote(SHORT_RARE_TERM)}"), args.requests,
                    lambda p: "<mark>" in p),
                measure("search, 2 chars, common", lambda _i: client.request(
                    "GET", f"/search?q={quote(SHORT_COMMON_TERM)}"), args.requests,
                    lambda p: "<mark>" in p),
                measure("search, full width", lambda _i: client.request(
                    "GET", f"/search?q={quote(WIDE_TERM)}"), args.requests,
                    lambda p: "<mark>CSV出力</mark>" in p),
                measure("search, filtered", lambda _i: client.request(
                    "GET", f"/search?q={quote(COMMON_TERM)}&status=open"), args.requests,
                    lambda p: "<mark>" in p),
            ]
        finally:
            server.stop()

    print(f"# bench/web.py: {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, PostgreSQL {version}")
    print(f"# data: {counts['tickets']:,} tickets ({len(active):,} not closed), "
          f"{counts['messages']:,} messages; database {size}")
    print("# sizes: " + ", ".join(f"{name} {size}" for name, size in indexes))
    for name, seconds in load_timings.items():
        print(f"# load: {name}: {seconds:.0f} s")
    print(f"# {args.requests} requests per line after 10 warm-up requests; "
          "HTTP keep-alive to uvicorn on "
          "loopback, pages rendered in full")
    for line in lines:
        print(line)

    if not args.keep:
        with psycopg.connect(f"{args.admin_url}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
