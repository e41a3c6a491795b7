"""What the queue's saved views cost with a million tickets on PostgreSQL.

    nice .venv/bin/python -m bench.queue_views > bench/results/queue_views.txt

Creates the database ``madoguchi_bench_queue`` (dropped first, and at the end
unless --keep) on the PostgreSQL at --admin-url, loads --tickets tickets as
bench/web.py does (95% closed, 3% open, 2% pending, 3% flagged) but no
messages, gives a tenth of the open ones to the bench user and another
tenth to a colleague, and migrates to head (0002 and 0010 build their
indexes over the loaded rows).

Then it times, each --requests times after a warm-up:

- every view's count as the queue page runs it (``queries.queue_count``,
  ``ANY_TRIAGE``), with the plan PostgreSQL chose for it;
- the queue's first page over HTTP, rendered in full with the six counts
  (bench/results/web.txt has the same page before the views: p95 24.1 ms).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from tempfile import TemporaryDirectory
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from bench.web import PASSWORD, Client, load, measure, timed
from madoguchi.config import load_settings
from madoguchi.config.web import WebSettings
from madoguchi.ticketing.db import upgrade
from madoguchi.ticketing.models import Ticket
from madoguchi.ticketing.queues import ANY_TRIAGE
from madoguchi.web.auth import hash_password
from madoguchi.web.queries import QueueFilters, _filtered, queue_count
from madoguchi.web.queue_pages import VIEWS
from madoguchi.web_server import WebServer

DB = "madoguchi_bench_queue"
TZ = ZoneInfo("Asia/Tokyo")


def _staff(conn: psycopg.Connection) -> tuple[int, int]:
    ids = []
    for login, name in (("bench", "ベンチ 担当"), ("colleague", "同僚 担当")):
        row = conn.execute(
            "INSERT INTO staff_users (login, name, email, password_hash, role, active) "
            "VALUES (%s, %s, '', %s, 'agent', true) RETURNING id",
            (login, name, hash_password(PASSWORD)),
        ).fetchone()
        assert row is not None
        ids.append(int(row[0]))
    # Not closed: a tenth to the bench user, a tenth to the colleague, the rest unassigned;
    # a third of them answered already.
    conn.execute("UPDATE tickets SET assignee_id = CASE WHEN (id / 100) %% 10 = 1 THEN %s "
                 "WHEN (id / 100) %% 10 = 2 THEN %s END WHERE status <> 'closed'", ids)
    conn.execute("UPDATE tickets SET first_responded_at = received_at + interval '1 hour' "
                 "WHERE status <> 'closed' AND id % 3 = 0")
    # Due around now, so that "due today" has some (the loaded dates are in the past).
    conn.execute("UPDATE tickets SET first_response_due = now() + ((id::bigint * 7919) % 240) "
                 "* interval '1 hour' - interval '12 hours' WHERE status <> 'closed'")
    conn.commit()
    return ids[0], ids[1]


def _timed(run: Callable[[], object], requests: int) -> tuple[float, float, object]:
    values: list[object] = []
    p50, p95, _ = timed(lambda _i: values.append(run()), requests, warm_up=5)
    return p50, p95, values[-1]


def _counts(url: str, me: int, requests: int) -> list[str]:
    engine = create_engine(url)
    now = datetime.now(UTC)
    end = datetime.combine(now.astimezone(TZ).date() + timedelta(days=1), clock(0), tzinfo=TZ)
    lines = []
    with Session(engine) as session:
        for view in VIEWS:
            f = QueueFilters.from_params(dict(view.params))
            p50, p95, n = _timed(lambda f=f: queue_count(session, f, user_id=me, day_end=end),  # type: ignore[misc]
                                 requests)
            lines.append(f"count {view.key:<12} {n:>8,}   p50 {p50:6.2f} ms   p95 {p95:6.2f} ms")
        triage = select(func.count()).select_from(Ticket).where(*ANY_TRIAGE)
        p50, p95, n = _timed(lambda: session.scalar(triage), requests)
        lines.append(f"count {'triage':<12} {n:>8,}   p50 {p50:6.2f} ms   p95 {p95:6.2f} ms")
        for view in VIEWS:
            f = QueueFilters.from_params(dict(view.params))
            query = _filtered(select(func.count()).select_from(Ticket), f, me, end)
            compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
            plan = session.connection().exec_driver_sql(f"EXPLAIN {compiled}").fetchall()
            scans = [r[0].strip().lstrip("-> ") for r in plan if "Scan" in r[0]]
            lines.append(f"#   plan {view.key:<12} {'; '.join(scans)}")
    engine.dispose()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    args = parser.parse_args()
    url = f"{args.admin_url.replace('postgresql://', 'postgresql+psycopg://', 1)}/{DB}"
    with psycopg.connect(f"{args.admin_url}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')  # type: ignore[arg-type]
        admin.execute(f"CREATE DATABASE \"{DB}\" TEMPLATE template0 ENCODING 'UTF8' "  # type: ignore[arg-type]
                      "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'")
    upgrade(url, "0001")
    with psycopg.connect(f"{args.admin_url}/{DB}") as conn:
        load(conn, args.tickets, 0)
        me, _colleague = _staff(conn)
    started = time.perf_counter()
    upgrade(url)
    print(f"# migrations to head: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    with psycopg.connect(f"{args.admin_url}/{DB}", autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        active = conn.execute("SELECT count(*) FROM tickets WHERE status <> 'closed'"
                              ).fetchone()[0]  # type: ignore[index]
        version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    lines = _counts(url, me, args.requests)
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
            lines.append(measure("queue, first page", lambda _i: client.request("GET", "/queue"),
                                 args.requests, lambda p: p.count('class="number"') == 50
                                 and p.count('class="count"') == 6))
            lines.append(measure("queue, view mine", lambda _i: client.request(
                "GET", "/queue?assignee=me"), args.requests,
                lambda p: p.count('class="number"') == 50))
        finally:
            server.stop()
    print(f"# bench/queue_views.py: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"PostgreSQL {version}; load average at the end "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (a machine shared with others)")
    print(f"# data: {args.tickets:,} tickets ({active:,} not closed: a tenth the bench "
          "user's, a tenth a colleague's, a third answered), no messages")
    print(f"# {args.requests} runs per line after a warm-up; counts through SQLAlchemy in "
          "this process, pages over HTTP keep-alive to uvicorn on loopback")
    for line in lines:
        print(line)
    if not args.keep:
        with psycopg.connect(f"{args.admin_url}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
