"""How fast the web desk answers with a million tickets on PostgreSQL.

    .venv/bin/python bench/web.py > bench/results/web.txt

Creates the database ``madoguchi_bench_web`` (or --db; dropped first if it exists, and
dropped again at the end unless --keep or --build-only) on the PostgreSQL at --admin-url
and fills it with ``bench.web_data.build``: migrated to head while empty, --tickets
tickets (95% closed, 3% open, 2% pending, 3% flagged) with --messages-per-ticket
messages each, their folded search text, the conversation's states and four history
lines a ticket, generated inside the server, the indexes built after the load (see
``bench/web_data.py``). ``--build-only`` stops there; ``--reuse`` measures a kept one:

    .venv/bin/python bench/web.py --build-only --db madoguchi_scale_web
    .venv/bin/python bench/web.py --reuse --keep --db madoguchi_scale_web

Then the desk is served by uvicorn on a loopback port in this process and
signed in to; each page is fetched --requests times after a warm-up, over
HTTP with keep-alive, and the figures are wall-clock milliseconds per
request, server and rendering included:

- queue, first page: the default view (not closed), the soonest deadline still open
  first (first response or next response)
- queue, after a change: the same, each request right after a ticket changed (a NOTIFY
  as every commit sends, heard by the server first), so that the views' counts, kept
  until then (web/count_cache.py), are counted again
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
- customers, by reading: the customer lookup (/customers) typed as its reading in
  hiragana, かぶしきがいしゃべんち1234, found as 株式会社ベンチ1234 (5,000 customers)
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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from urllib.parse import quote, urlsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import probe  # noqa: E402
from bench.web_data import build  # noqa: E402
from madoguchi import heap  # noqa: E402
from madoguchi.config import load_settings  # noqa: E402
from madoguchi.config.web import WebSettings  # noqa: E402
from madoguchi.ticketing.db import upgrade  # noqa: E402
from madoguchi.web.auth import hash_password  # noqa: E402
from madoguchi.web_server import WebServer  # noqa: E402

DB = "madoguchi_bench_web"
PASSWORD = "bench password 1234"
COMMON_TERM, RARE_TERM, SHORT_RARE_TERM = "ライセンス", "見積書の再送付", "再送"
SHORT_COMMON_TERM, WIDE_TERM = "印刷", "ＣＳＶ出力"
READING_TERM = "かぶしきがいしゃべんち1234"  # 株式会社ベンチ1234 by its reading, in hiragana


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


def timed(run: Callable[[int], object], requests: int, warm_up: int = 10,
          before: Callable[[], object] | None = None) -> tuple[float, float, list[float]]:
    """p50 and p95 in ms of ``requests`` calls after ``warm_up`` ones, and the sorted samples
    (``before`` runs before each call, off the clock)."""
    for i in range(warm_up):
        if before is not None:
            before()
        run(-1 - i)
    samples = []
    for i in range(requests):
        if before is not None:
            before()
        started = time.perf_counter()
        run(i)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], samples


def measure(name: str, fetch: Callable[[int], tuple[int, str]], requests: int,
            check: Callable[[str], bool], before: Callable[[], object] | None = None) -> str:
    def checked(i: int) -> None:
        status, page = fetch(i)
        assert status == 200 and check(page), (name, status, page[:300])

    p50, p95, samples = timed(checked, requests, before=before)
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
    parser.add_argument("--build-only", action="store_true",
                        help="Build the database and keep it, measure nothing (then --reuse).")
    parser.add_argument("--reuse", action="store_true",
                        help="Measure a database kept by an earlier --keep run.")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    db = args.db
    url = f"{args.admin_url.replace('postgresql://', 'postgresql+psycopg://', 1)}/{db}"

    load_timings: dict[str, float] = {}
    if not args.reuse:
        load_timings = build(args.admin_url, db, args.tickets, args.messages_per_ticket)
    if args.build_only:
        return
    upgrade(url)  # a kept database at an older head gets the migrations since
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

    load_before = os.getloadavg()
    speed_before = probe()
    with TemporaryDirectory() as tmp:
        settings = load_settings(None, database_url=url, storage_dir=Path(tmp) / "storage",
                                 sources=[], log_level="WARNING")
        web = WebSettings(secret_key_file=Path(tmp) / "secret", send_outbox_after_reply=False)
        server = WebServer(settings, web=web, host="127.0.0.1", port=0).start()
        heap.settle()  # as `madoguchi web` does once it is set up
        import logging

        logging.getLogger("uvicorn.access").disabled = True
        try:
            client = Client(server.url)
            client.sign_in("bench")
            # The queue's counts are kept until a ticket changes (web/count_cache.py): the
            # first line finds them kept, "after a change" has each request follow one.
            live = server.app.state.live
            heard = threading.Event()
            live.on_ticket_change.append(heard.set)
            deadline = time.monotonic() + 30
            while not live.listening:
                assert time.monotonic() < deadline, "the change feed never listened"
                time.sleep(0.05)
            notifier = psycopg.connect(f"{args.admin_url}/{db}", autocommit=True)

            def a_change() -> None:
                # A ticket's change as every commit announces it (ticketing/change_feed.py),
                # waited for until this process heard it, off the clock.
                heard.clear()
                notifier.execute("SELECT pg_notify('madoguchi_desk', %s)",
                                 (f"ticket:{active[0][1]}",))
                assert heard.wait(10), "the change was not heard"

            def deep(_i: int) -> tuple[int, str]:
                due, tid = rng.choice(active)
                cursor = f"{round(due.timestamp() * 1_000_000)}.{tid}"
                return client.request("GET", f"/queue?after={cursor}")

            lines = [
                measure("queue, first page", lambda _i: client.request("GET", "/queue"),
                        args.requests, lambda p: p.count('class="number"') == 50),
                measure("queue, after a change", lambda _i: client.request(
                    "GET", "/queue"), args.requests, lambda p: p.count('class="number"') == 50,
                    before=a_change),
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
                measure("customers, by reading", lambda _i: client.request(
                    "GET", f"/customers?q={quote(READING_TERM)}"), args.requests,
                    lambda p: "株式会社ベンチ1234<" in p),
            ]
            notifier.close()
        finally:
            server.stop()

    print(f"# bench/web.py: {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, PostgreSQL {version}; load average "
          f"{', '.join(f'{x:.2f}' for x in load_before)} before the requests, "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} after")
    print(f"# CPU probe (bench/machine.py, lower is faster): {speed_before:.2f} s before the "
          f"requests, {probe():.2f} s after")
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
