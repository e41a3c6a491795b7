"""Scale-out on PostgreSQL: messages/second with 1, 2 and 4 daemons on one mailbox.

    .venv/bin/python bench/scale.py [--messages 4000] [--workers 1 2 4] [--batch 50]

For each number of workers: a fresh PostgreSQL database, a fresh Dovecot
mailbox, an SMTP listener for the acknowledgements, and that many real
``madoguchi daemon`` processes, started and idle. Then the whole corpus
(bench/ingest.py's realistic Japanese mail, 30 % follow-ups) is moved into
the INBOX in one IMAP command, and the clock runs until every message is
committed. Each run is then checked: every message stored once, no claim
left, every acknowledgement queued once. The outbox is held back during the
measurement (acknowledgements are queued in the ingest transaction, and
counted, but delivered later), and so is the SLA sweep: both run on the
leader alone and would otherwise compete with its ingest for the same
process (the corpus' old dates make every ticket overdue at once).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select  # noqa: E402

from bench import daemons  # noqa: E402
from bench.ingest import build_mails  # noqa: E402
from madoguchi.config import SupportNumberSettings  # noqa: E402
from madoguchi.ticketing.customers_csv import import_rows, read_rows  # noqa: E402
from madoguchi.ticketing.db import session_factory, transaction, upgrade  # noqa: E402
from madoguchi.ticketing.models import IngestClaim, Message, OutboxMessage  # noqa: E402
from tests.postgres import postgres_server  # noqa: E402
from tests.servers.dovecot import Dovecot  # noqa: E402
from tests.smtp_server import SmtpTestServer, _LoopbackController, _RecordingHandler  # noqa: E402

DB = "madoguchi_bench_scale"


def parse_workers(daemons: int) -> int:
    """Each daemon's share of the cores, as README advises for several on one host."""
    return max(1, (os.cpu_count() or 1) // daemons)


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def run(workers: int, mails: list, admin_url: str, batch: int, interval: float,
        tmp: Path) -> dict[str, float]:
    url = daemons.fresh_postgres(admin_url, DB)
    upgrade(url)
    engine = create_engine(url)
    with transaction(session_factory(engine)) as session:
        csv_text = (ROOT / "demo" / "customers.csv").read_text(encoding="utf-8")
        import_rows(session, read_rows(csv_text, SupportNumberSettings()))
    handler = _RecordingHandler()
    smtp = SmtpTestServer(_LoopbackController(handler), handler).start()
    with Dovecot() as server:
        account = server.add_user(f"scale{workers}")
        account.create_folder("Staging")
        with account.client() as client:
            for raw, when in mails:
                client.append("Staging", raw, msg_time=when)
        config = daemons.write_config(
            tmp / f"scale-{workers}.toml", database_url=url, storage=tmp / f"storage-{workers}",
            imap=account, smtp_port=smtp.port, batch=batch, interval=interval,
            outbox_interval=3600,
            sla_sweep=3600, parse_workers=parse_workers(workers),
        )
        logs = [tmp / f"scale-{workers}-{n}.log" for n in range(workers)]
        procs = [daemons.start(config, log) for log in logs]
        try:
            for log in logs:
                daemons.wait_for(lambda log=log: "alongside any other daemon" in log.read_text(),
                                 120, "the daemons to start")
            time.sleep(1)  # every daemon past its first (empty) poll

            def stored() -> int:
                with engine.connect() as conn:
                    return int(conn.execute(select(func.count()).select_from(Message)).scalar_one())

            with account.client() as client:
                client.select_folder("Staging")
                started = time.perf_counter()
                busy0, total0 = cpu_ticks()
                client.move("1:*", "INBOX")
            daemons.wait_for(lambda: stored() >= len(mails), 600, "every message", step=0.02)
            elapsed = time.perf_counter() - started
            busy1, total1 = cpu_ticks()
            load = os.getloadavg()[0]
        finally:
            for proc in procs:
                daemons.stop(proc)
        by_worker = [log.read_text().count(": created T-") + log.read_text().count(": threaded T-")
                     for log in logs]
        with engine.connect() as conn:
            messages = conn.execute(select(Message.message_id)).scalars().all()
            claims = conn.execute(select(func.count()).select_from(IngestClaim)).scalar_one()
            outbox = conn.execute(select(func.count()).select_from(OutboxMessage)).scalar_one()
        left = len(account.messages("INBOX"))
    smtp.stop()
    engine.dispose()
    daemons.drop_postgres(admin_url, DB)
    return {
        "elapsed": elapsed, "rate": len(mails) / elapsed, "load": load,
        "busy": (busy1 - busy0) / max(1, total1 - total0),
        "stored": len(messages), "distinct": len(set(messages)), "claims": claims,
        "outbox": outbox, "left": left, "by_worker": by_worker,  # type: ignore[dict-item]
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=4000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--interval", type=float, default=1.0,
                    help="each daemon's IMAP poll interval, seconds (default 1)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    mails = build_mails(args.messages, 0.3, random.Random(args.seed))
    print(f"madoguchi bench/scale.py  ({args.messages} messages, 30 % follow-ups, batch "
          f"{args.batch}, poll every {args.interval:g} s, {os.cpu_count()} cores, PostgreSQL; "
          "each daemon runs cores / daemons parse workers, at least one)")
    print(f"{'daemons':>7}  {'seconds':>7}  {'msg/s':>6}  {'stored':>6}  {'twice':>5}  "
          f"{'claims left':>11}  {'acks queued':>11}  {'left in INBOX':>13}  {'cpu busy':>8}  "
          "per daemon  load")
    with postgres_server() as admin_url, tempfile.TemporaryDirectory(prefix="mado-scale-") as tmp:
        for workers in args.workers:
            r = run(workers, mails, admin_url, args.batch, args.interval, Path(tmp))
            print(f"{workers:>7}  {r['elapsed']:>7.2f}  {r['rate']:>6.0f}  {r['stored']:>6}  "
                  f"{r['stored'] - r['distinct']:>5}  {r['claims']:>11}  {r['outbox']:>11}  "
                  f"{r['left']:>13}  {r['busy']:>8.0%}  {r['by_worker']}  {r['load']:.2f}",
                  flush=True)
    print("(msg/s: from the moment the mail lands in the INBOX until the last message is "
          "committed; acks queued = tickets acknowledged, one outbox row each, delivered "
          "after the measurement; cpu busy: share of all cores' time not idle while "
          "measuring, every process on the machine counted)")


if __name__ == "__main__":
    main()
