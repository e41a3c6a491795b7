"""How the word search answers on SQLite at a desk's size, two-character terms included.

    .venv/bin/python bench/search_sqlite.py [--tickets 20000] > bench/results/search_sqlite.txt

SQLite's FTS5 trigram index cannot answer a term of two characters: the
desk reads the messages newest first with LIKE over the folded
``search_text`` until a page of tickets is found. A common term fills the
page at once; a rare one reads every message. This measures whether that
is fast enough at the sizes a desk on SQLite has (one daemon, one office):
--tickets tickets with --messages-per-ticket messages of bench/web.py's
phrases (folded by the rules, as the desk writes them), in a temporary
file, ``ticketing.search.search`` timed in-process (no HTTP).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

from bench.web import PHRASES, RARE
from madoguchi.ticketing.db import make_engine, session_factory, upgrade
from madoguchi.ticketing.rules.search_text import message_document
from madoguchi.ticketing.search import search

LINES = [("2 chars, rare", "再送"), ("2 chars, common", "印刷"),
         ("3+ chars, rare", "見積書の再送付"), ("common word", "ライセンス"),
         ("full width", "ＣＳＶ出力")]


def fill(path: Path, tickets: int, per_ticket: int, rng: random.Random) -> None:
    db = sqlite3.connect(path)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    db.executemany(
        "INSERT INTO tickets (id, number, status, channel, subject, received_at, state, "
        "priority, tags) VALUES (?, ?, 'closed', 'email', ?, ?, 'closed', 'normal', '[]')",
        [(t, f"T-2024-{t:06d}", rng.choice(PHRASES), (start + timedelta(minutes=t)).isoformat())
         for t in range(1, tickets + 1)])
    rows = []
    for m in range(1, tickets * per_ticket + 1):
        subject = rng.choice(PHRASES)
        text = "".join(rng.choice(PHRASES) for _ in range(5)) + (RARE if m % 2000 == 7 else "")
        doc = message_document(note=False, subject=subject, text=text, sender="a@example.jp")
        rows.append((m, (m - 1) // per_ticket + 1, subject, text, doc,
                     (start + timedelta(minutes=m)).isoformat()))
    db.executemany(
        "INSERT INTO messages (id, ticket_id, direction, channel, \"references\", sender, "
        "sender_name, recipients, cc, subject, received_at, text, search_text, "
        "unverified_sender) VALUES (?, ?, 'in', 'email', '[]', 'a@example.jp', '', '[]', "
        "'[]', ?, ?, ?, ?, 0)", [(i, t, s, r, x, d) for i, t, s, x, d, r in rows])
    db.commit()
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--messages-per-ticket", type=int, default=5)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    rng = random.Random(20261202)
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "desk.db"
        upgrade(f"sqlite:///{path}")
        started = time.perf_counter()
        fill(path, args.tickets, args.messages_per_ticket, rng)
        print(f"# fill (with the FTS5 trigger): {time.perf_counter() - started:.0f} s",
              file=sys.stderr)
        engine = make_engine(f"sqlite:///{path}")
        factory = session_factory(engine)
        print(f"# bench/search_sqlite.py: {args.tickets:,} tickets, "
              f"{args.tickets * args.messages_per_ticket:,} messages, SQLite "
              f"{sqlite3.sqlite_version}, database {path.stat().st_size / 2**20:.0f} MiB; "
              f"{args.requests} searches a line after 3 warm-up, in-process")
        for name, term in LINES:
            samples = []
            for i in range(args.requests + 3):
                with factory() as session:
                    t0 = time.perf_counter()
                    hits = search(session, term).hits
                    if i >= 3:
                        samples.append((time.perf_counter() - t0) * 1000)
                assert hits, term
            samples.sort()
            p95 = samples[int(len(samples) * 0.95) - 1]
            print(f"{name:<18} {term:<8} p50 {statistics.median(samples):7.1f} ms   "
                  f"p95 {p95:7.1f} ms   ({len(hits)} tickets on the first page)")
        engine.dispose()


if __name__ == "__main__":
    main()
