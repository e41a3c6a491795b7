"""Latency with IMAP IDLE: from a mail's APPEND to its committed ticket and to its acknowledgement.

    nice .venv/bin/python bench/latency.py [--rate 5] [--seconds 60] [--databases sqlite postgresql]

For each database: a fresh desk (the demo customers), a Dovecot mailbox, an
SMTP listener that notes when each acknowledgement is handed to it, and real
``madoguchi daemon`` processes (one on SQLite, two on PostgreSQL) polling
every 60 s only as the fallback, so that what is measured is IDLE. Once
every daemon waits in IDLE, mail from registered contacts is appended at
``--rate`` per second for ``--seconds``; the clock of each starts just
before its APPEND. A ticket counts as committed when its message is seen
in the database (looked at every 20 ms); an acknowledgement when the SMTP
listener has its data. The outbox's scheduled round runs every second;
besides it, the leader's wake-up (``madoguchi/outbox_wake.py``) starts a
round as soon as mail is queued: after its own polls, on NOTIFY from a
standby's commit (PostgreSQL), or when its look finds due rows.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, select  # noqa: E402

from bench import daemons  # noqa: E402
from madoguchi.config import SupportNumberSettings  # noqa: E402
from madoguchi.ticketing.customers_csv import import_rows, read_rows  # noqa: E402
from madoguchi.ticketing.db import session_factory, transaction, upgrade  # noqa: E402
from madoguchi.ticketing.models import Message  # noqa: E402
from tests.mailfactory import make_mail  # noqa: E402
from tests.postgres import postgres_server  # noqa: E402
from tests.servers.dovecot import Dovecot  # noqa: E402
from tests.smtp_server import (  # noqa: E402
    SmtpTestServer,
    _LoopbackController,
    _RecordingHandler,
)

DB = "madoguchi_bench_latency"
# Registered contacts and the contract each is registered for (demo/customers.csv).
SENDERS = [(("山田 太郎", "yamada@sakura-shoji.example.jp"), "2031-0001-0008"),
           (("佐藤 一郎", "sato@minato-ss.example.jp"), "2031-0002-0007")]
_ID = re.compile(rb"^In-Reply-To: <(lat-\d+@example\.jp)>", re.MULTILINE | re.IGNORECASE)


class _Timed(_RecordingHandler):
    """Notes when each acknowledgement's data was handed over, by the mail it answers."""

    def __init__(self) -> None:
        super().__init__()
        self.handed: dict[str, float] = {}

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        now = time.time()
        found = _ID.search(envelope.original_content or b"")
        if found:
            self.handed.setdefault(found.group(1).decode(), now)
        return await super().handle_DATA(server, session, envelope)


def _percentiles(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]
    return f"p50 {statistics.median(ordered):.2f} s  p95 {p95:.2f} s  max {ordered[-1]:.2f} s"


def run(kind: str, url: str, tmp: Path, rate: float, seconds: float) -> dict[str, object]:
    upgrade(url)
    engine = create_engine(url)
    with transaction(session_factory(engine)) as session:
        csv_text = (ROOT / "demo" / "customers.csv").read_text(encoding="utf-8")
        import_rows(session, read_rows(csv_text, SupportNumberSettings()))
    handler = _Timed()
    smtp = SmtpTestServer(_LoopbackController(handler), handler).start()
    workers = 2 if kind == "postgresql" else 1
    appended: dict[str, float] = {}
    committed: dict[str, float] = {}
    with Dovecot() as server:
        account = server.add_user(f"latency-{kind}")
        config = daemons.write_config(
            tmp / f"{kind}.toml", database_url=url, storage=tmp / f"storage-{kind}",
            imap=account, smtp_port=smtp.port, batch=50, interval=60, outbox_interval=1,
            sla_sweep=3600, parse_workers=1, idle=True)
        logs = [tmp / f"{kind}-{n}.log" for n in range(workers)]
        procs = [daemons.start(config, log) for log in logs]
        try:
            for log in logs:
                daemons.wait_for(lambda log=log: "waiting for new mail with IDLE"
                                 in log.read_text(), 120, "IDLE in every daemon")
            time.sleep(1)
            done = threading.Event()

            def watch() -> None:
                with engine.connect() as conn:
                    while not done.is_set():
                        for (mid,) in conn.execute(select(Message.message_id)):
                            committed.setdefault(mid, time.time())
                        conn.rollback()
                        time.sleep(0.02)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            total = int(rate * seconds)
            with account.client() as client:
                start = time.monotonic()
                for n in range(total):
                    time.sleep(max(0.0, start + n / rate - time.monotonic()))
                    mid = f"lat-{n}@example.jp"
                    sender, number = SENDERS[n % len(SENDERS)]
                    raw = make_mail(subject=f"ライセンスキーの再発行について {n}",
                                    body=f"サポートサービス番号: {number}\n"
                                         "ライセンスキーの再発行をお願いします。\n",
                                    from_=sender, message_id=mid)
                    appended[mid] = time.time()
                    client.append("INBOX", raw)
            try:
                daemons.wait_for(lambda: len(committed) >= total
                                 and len(handler.handed) >= total,
                                 120, "every ticket and acknowledgement", step=0.1)
            except TimeoutError:
                for log in logs:
                    (Path("/tmp") / log.name).write_text(log.read_text())
                print(f"  timed out: {len(committed)} committed, {len(handler.handed)} "
                      f"acknowledged of {total}; the first daemon's log ends:\n"
                      + "\n".join(logs[0].read_text().splitlines()[-15:]), flush=True)
            done.set()
            watcher.join(5)
        finally:
            for proc in procs:
                daemons.stop(proc)
    smtp.stop()
    with engine.connect() as conn:
        stored = conn.execute(select(Message.message_id)).scalars().all()
    engine.dispose()
    return {
        "ticket": [committed[m] - appended[m] for m in appended if m in committed],
        "smtp": [handler.handed[m] - appended[m] for m in appended if m in handler.handed],
        "stored": len(stored), "twice": len(stored) - len(set(stored)),
        "acks": len(handler.messages), "workers": workers,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    args = ap.parse_args()
    print(f"madoguchi bench/latency.py  ({args.rate:g} mails/s for {args.seconds:g} s, IDLE, "
          f"fallback poll every 60 s, outbox every 1 s, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f} at start)")
    with tempfile.TemporaryDirectory(prefix="mado-latency-") as tmp:
        for kind in args.databases:
            if kind == "postgresql":
                with postgres_server() as admin:
                    url = daemons.fresh_postgres(admin, DB)
                    r = run(kind, url, Path(tmp), args.rate, args.seconds)
                    daemons.drop_postgres(admin, DB)
            else:
                r = run(kind, f"sqlite:///{tmp}/latency.db", Path(tmp), args.rate, args.seconds)
            print(f"{kind} ({r['workers']} daemon{'s' if r['workers'] != 1 else ''}): "
                  f"stored {r['stored']}, twice {r['twice']}, acknowledgements {r['acks']}, "
                  f"load {os.getloadavg()[1]:.2f} (5-minute average at its end)")
            print(f"  append -> committed ticket:      {_percentiles(r['ticket'])}")  # type: ignore[arg-type]
            print(f"  append -> acknowledgement SMTP:  {_percentiles(r['smtp'])}", flush=True)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
