"""Faults, not crashes: the daemon against a cutting IMAP proxy, a flaky SMTP server, a database
that loses connections or stays locked, dying workers, kill -9 and SIGTERM, for minutes.

    .venv/bin/python bench/faults.py [--minutes 10] [--mails 300] [--seed 5] [--backend both]

Per backend (PostgreSQL, then SQLite), two daemons (a leader and a
standby) run for ``--minutes`` while Japanese mail arrives at a steady pace,
and the harness, playing systemd (a daemon that exits is started again),
injects at random:

- IMAP: a TCP proxy between the daemons and Dovecot cuts every connection,
  stalls them (no byte forwarded for 5-40 s), or resets them;
- SMTP: per command, 451 or 550 at RCPT, the connection dropped after the
  whole message (kept by the server half of the time, as a real one may),
  or the answer to the final dot stalled 5-40 s (the message kept);
  ``smtp.data_timeout_seconds`` is 30 s here, so some stalls outlast it;
- PostgreSQL: a random backend of the daemons terminated
  (``pg_terminate_backend``), every third time the leader's lock connection;
- SQLite: another process holding the write lock for 35 s;
- a parse worker of a daemon killed with SIGKILL while idle;
- a daemon killed with SIGKILL, or stopped with SIGTERM (its exit status
  recorded), then started again.

Then the faults stop and the daemons run until everything is stored and
sent. It prints messages lost and doubled, acknowledgements sent twice and
silently lost (neither delivered nor failed for staff with a reason), the
longest stretch with work waiting and nothing done, job runs of a leader
after a newer epoch had begun, daemons that had to be restarted by hand
(alive but idle with work waiting for 120 s), SIGTERM exit statuses, and
child processes that outlived their daemon.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy import func  # noqa: E402
from sqlalchemy import select as sql_select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench import daemons  # noqa: E402
from bench.crash import Desk, Item, Result, build_corpus, collect  # noqa: E402
from madoguchi.ticketing.acknowledgement import ACK_KIND  # noqa: E402
from madoguchi.ticketing.models import Message, OutboxMessage, OutboxStatus  # noqa: E402
from tests.postgres import postgres_server  # noqa: E402
from tests.servers.dovecot import Dovecot  # noqa: E402
from tests.smtp_server import _RecordingHandler  # noqa: E402
from tests.test_faults import WriteLock  # noqa: E402

IDLE_LIMIT = 120.0  # alive, work waiting, nothing done this long: a restart by hand
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
RAN = re.compile(r"run as the leader of epoch (\d+)")
LEADS = re.compile(r"this daemon is the scheduler \(epoch (\d+)\)")


# -- IMAP: a proxy that cuts, stalls and resets --------------------------------------


class FaultyProxy:
    """A TCP proxy on a loopback port in front of ``target``; ``cut``, ``stall``, ``reset``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.stalled_until = 0.0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                server = socket.create_connection(self.target)
            except OSError:
                continue
            with self.lock:
                self.pairs.append((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 0.5)
                if time.monotonic() < self.stalled_until:
                    continue
                for src in ready:
                    data = src.recv(65536)
                    if not data:
                        return
                    (b if src is a else a).sendall(data)
        except (OSError, ValueError):  # cut: closed under the select
            return
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()
            with self.lock, contextlib.suppress(ValueError):
                self.pairs.remove((a, b))

    def cut(self, *, reset: bool = False) -> None:
        with self.lock:
            pairs = list(self.pairs)
        for pair in pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    if reset:  # RST instead of FIN
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.close()

    def stall(self, seconds: float) -> None:
        self.stalled_until = time.monotonic() + seconds


# -- SMTP: refusals, drops and stalls at random -----------------------------------------


class FlakySmtp(_RecordingHandler):
    """Records what it accepts; per command a refusal, a drop or a stall, at random."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng
        self.faulty = threading.Event()
        self.faults: Counter[str] = Counter()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if self.faulty.is_set():
            roll = self.rng.random()
            if roll < 0.08:
                self.faults["451 at RCPT"] += 1
                return "451 4.7.1 Try again later (fault)"
            if roll < 0.10:
                self.faults["550 at RCPT"] += 1
                return "550 5.1.1 Mailbox unavailable (fault)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import asyncio

        roll = self.rng.random() if self.faulty.is_set() else 1.0
        if roll < 0.06:
            self.faults["dropped after the message"] += 1
            if self.rng.random() < 0.5:
                self._keep(session, envelope)  # a real server may have queued it
            server.transport.abort()
            return "421 never heard"
        self._keep(session, envelope)
        if roll < 0.12:
            self.faults["final answer stalled"] += 1
            await asyncio.sleep(self.rng.uniform(5, 40))
        return "250 2.0.0 OK queued"

    def _keep(self, session: Any, envelope: Any) -> None:
        from tests.smtp_server import ReceivedMail

        with self._lock:
            self.messages.append(ReceivedMail(str(envelope.mail_from),
                                              tuple(envelope.rcpt_tos),
                                              envelope.original_content, False))


# -- the daemons, as systemd would keep them ----------------------------------------------


@dataclass
class Life:
    proc: subprocess.Popen[bytes]
    log: Path
    children: list[psutil.Process] = field(default_factory=list)


@dataclass
class Tally:
    faults: Counter[str] = field(default_factory=Counter)
    sigterm_codes: list[int] = field(default_factory=list)
    exits_on_their_own: Counter[int] = field(default_factory=Counter)
    by_hand: int = 0
    leaked: int = 0
    longest_idle: float = 0.0
    lives: list[Path] = field(default_factory=list)


class Keeper:
    """Two daemons on one desk, started again whenever they end (Restart=on-failure)."""

    def __init__(self, desk: Desk, tally: Tally) -> None:
        self.desk = desk
        self.tally = tally
        self.lives: list[Life | None] = [None, None]
        self.count = 0
        self.lock = threading.Lock()

    def start(self, slot: int) -> None:
        self.count += 1
        log = self.desk.workdir / f"daemon-{self.count:03d}.log"
        self.tally.lives.append(log)
        self.lives[slot] = Life(daemons.start(self.desk.config, log), log)

    def tend(self) -> None:
        """Start again any daemon that ended by itself; note its children."""
        with self.lock:
            for slot, life in enumerate(self.lives):
                if life is None:
                    self.start(slot)
                    continue
                code = life.proc.poll()
                if code is not None:
                    self.tally.exits_on_their_own[code] += 1
                    self._bury(life)
                    self.start(slot)
                    continue
                with contextlib.suppress(psutil.Error):
                    life.children = psutil.Process(life.proc.pid).children(recursive=True)

    def _bury(self, life: Life) -> None:
        """Count the children still alive 10 s after their daemon ended."""
        _, alive = psutil.wait_procs(life.children, timeout=10)
        self.tally.leaked += len(alive)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()

    def kill(self, slot: int, how: int) -> None:
        with self.lock:
            life = self.lives[slot]
            if life is None or life.proc.poll() is not None:
                return
            with contextlib.suppress(psutil.Error):
                life.children = psutil.Process(life.proc.pid).children(recursive=True)
            life.proc.send_signal(how)
            try:
                code = life.proc.wait(timeout=150)
            except subprocess.TimeoutExpired:
                life.proc.kill()
                code = life.proc.wait()
            if how == signal.SIGTERM:
                self.tally.sigterm_codes.append(code)
            self._bury(life)
            self.start(slot)

    def workers(self) -> list[psutil.Process]:
        found = []
        for life in self.lives:
            if life is not None:
                with contextlib.suppress(psutil.Error):
                    found += [c for c in psutil.Process(life.proc.pid).children(recursive=True)
                              if c.ppid() != life.proc.pid]  # forked by the forkserver
        return found

    def stop(self) -> None:
        for life in self.lives:
            if life is not None and life.proc.poll() is None:
                life.proc.send_signal(signal.SIGTERM)
                try:
                    self.tally.sigterm_codes.append(life.proc.wait(timeout=150))
                except subprocess.TimeoutExpired:
                    daemons.kill(life.proc)
                    self.tally.sigterm_codes.append(-9)
                self._bury(life)


# -- the run -------------------------------------------------------------------------------


def progress(desk: Desk) -> tuple[int, int, int]:
    """(work waiting, stored, acks settled): what the idle watch compares."""
    with Session(desk.engine) as s:
        stored = s.scalar(sql_select(func.count()).select_from(Message)) or 0
        settled = s.scalar(sql_select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status.in_([OutboxStatus.SENT, OutboxStatus.FAILED]))) or 0
        due = s.scalar(sql_select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status == OutboxStatus.PENDING,
            OutboxMessage.next_attempt_at <= func.now())) or 0
    waiting = len(desk.account.messages("INBOX")) + due
    return waiting, stored, settled


def watch(desk: Desk, keeper: Keeper, tally: Tally, done: threading.Event) -> None:
    last, since = (-1, -1), time.monotonic()
    while not done.wait(1.0):
        try:
            waiting, stored, settled = progress(desk)
        except Exception:
            continue  # the database is being faulted: measured from the next look
        now = time.monotonic()
        if (stored, settled) != last or not waiting:
            last, since = (stored, settled), now
            continue
        tally.longest_idle = max(tally.longest_idle, now - since)
        if now - since > IDLE_LIMIT:
            tally.by_hand += 1
            for slot in (0, 1):
                keeper.kill(slot, signal.SIGKILL)
            since = time.monotonic()


def inject(desk: Desk, keeper: Keeper, proxy: FaultyProxy, tally: Tally, rng: random.Random,
           until: float, admin_url: str | None) -> None:
    """One fault every 3-12 s, of the kinds the backend has, until ``until``."""
    kinds = ["imap-cut", "imap-stall", "imap-reset", "worker", "kill", "sigterm"]
    kinds += ["pg-backend"] * 3 if admin_url else ["sqlite-lock"]
    lock = None if admin_url else WriteLock(Path(make_url(desk.url).database or ""))
    terminated = 0
    while time.monotonic() < until:
        time.sleep(rng.uniform(3, 12))
        keeper.tend()
        kind = rng.choice(kinds)
        if kind in ("kill", "sigterm", "sqlite-lock") and rng.random() < 0.6:
            continue  # rarer than the rest
        tally.faults[kind] += 1
        if kind == "imap-cut":
            proxy.cut()
        elif kind == "imap-reset":
            proxy.cut(reset=True)
        elif kind == "imap-stall":
            proxy.stall(rng.uniform(5, 40))
        elif kind == "worker":
            workers = keeper.workers()
            if workers:
                with contextlib.suppress(psutil.Error):
                    rng.choice(workers).kill()
        elif kind in ("kill", "sigterm"):
            keeper.kill(rng.randrange(2), signal.SIGKILL if kind == "kill" else signal.SIGTERM)
        elif kind == "pg-backend" and admin_url:
            terminated += 1
            _terminate(admin_url, make_url(desk.url).database or "", rng,
                       leader=terminated % 3 == 0)
        elif kind == "sqlite-lock" and lock is not None and lock.acquire(wait=40):
            time.sleep(35)
            lock.release()


def _terminate(admin_url: str, database: str, rng: random.Random, *, leader: bool) -> None:
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as conn:
        if leader:
            rows = conn.execute(
                "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = %s "
                "AND d.datname = %s", [0x4D61646F, database]).fetchall()
        else:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s "
                                "AND pid <> pg_backend_pid()", [database]).fetchall()
        if rows:
            conn.execute("SELECT pg_terminate_backend(%s)", [rng.choice(rows)[0]])


def split_leadership(logs: list[Path]) -> int:
    """Job runs under an epoch after a newer epoch's scheduler had started (100 ms slack)."""
    began: dict[int, datetime] = {}
    runs: list[tuple[datetime, int]] = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
            stamp = LOG_TIME.match(line)
            if stamp is None:
                continue
            at = datetime.strptime(stamp[1], "%Y-%m-%d %H:%M:%S,%f")
            if (m := LEADS.search(line)) is not None:
                began.setdefault(int(m[1]), at)
            elif (m := RAN.search(line)) is not None:
                runs.append((at, int(m[1])))
    return sum(1 for at, epoch in runs
               if any(e > epoch and (at - t).total_seconds() > 0.1 for e, t in began.items()))


def run_backend(label: str, url: str | None, admin_url: str | None, args: argparse.Namespace,
                workdir: Path, server: Dovecot) -> list[str]:
    rng = random.Random(args.seed)
    corpus: list[Item] = [it for it in build_corpus(args.mails, 0, args.seed, workdir)]
    smtp = FlakySmtp(random.Random(args.seed + 1))
    account_port = server.port
    proxy = FaultyProxy(("127.0.0.1", account_port))
    desk = Desk(workdir, server, f"faults-{label.lower()}", url, handler=smtp,
                imap_port=proxy.port, interval=0.5, outbox_interval=0.5,
                smtp={"data_timeout_seconds": 30,
                      "backoff_base_seconds": 2, "backoff_max_seconds": 20},
                daemon={"source_backoff_base_seconds": 1, "source_backoff_max_seconds": 15,
                        "lease_renew_seconds": 1, "heartbeat_seconds": 2})
    tally = Tally()
    keeper = Keeper(desk, tally)
    keeper.tend()
    done = threading.Event()
    threading.Thread(target=watch, args=(desk, keeper, tally, done), daemon=True).start()
    started = time.monotonic()
    until = started + args.minutes * 60
    pace = args.minutes * 60 * 0.9 / len(corpus)
    feeder = threading.Thread(target=lambda: [(desk.feed(it), time.sleep(pace)) for it in corpus],
                              daemon=True)
    feeder.start()
    smtp.faulty.set()
    inject(desk, keeper, proxy, tally, rng, until, admin_url)
    smtp.faulty.clear()
    feeder.join()
    fault_time = time.monotonic() - started
    try:
        daemons.wait_for(lambda: (keeper.tend(), desk.quiet(len(corpus)))[1], 900,
                         "everything stored and sent", step=1.0)
        drained = time.monotonic() - started - fault_time
    except TimeoutError:
        drained = float("nan")
    done.set()
    keeper.stop()
    result = Result()
    collect(desk, corpus, result)
    lines = verdict(label, corpus, result, desk, tally, smtp, fault_time, drained)
    desk.close()
    return lines


def verdict(label: str, corpus: list[Item], result: Result, desk: Desk, tally: Tally,
            smtp: FlakySmtp, fault_time: float, drained: float) -> list[str]:
    keys = [it.key for it in corpus]
    with Session(desk.engine) as s:
        acks = s.execute(sql_select(OutboxMessage.message_id, OutboxMessage.status,
                                    OutboxMessage.last_error)
                         .where(OutboxMessage.kind == ACK_KIND)).all()
    delivered = result.acks_delivered
    to_staff = [m for m, st, err in acks if st == OutboxStatus.FAILED and err]
    silently = [m for m, st, err in acks if m not in delivered and m not in to_staff]
    bad_sigterm = [c for c in tally.sigterm_codes if c != 0]
    return [
        f"{label}: {fault_time / 60:.1f} min of faults, drained {drained:.0f} s after",
        f"  faults injected            : {dict(tally.faults)}",
        f"  SMTP faults                : {dict(smtp.faults)}",
        f"  messages fed / stored      : {len(keys)} / {sum(result.stored.values())}",
        f"  messages lost              : {sum(1 for k in keys if result.stored[k] == 0)}",
        f"  messages stored twice      : {sum(1 for k in keys if result.stored[k] > 1)}",
        f"  left in the mailbox        : {result.left_in_mailbox}",
        f"  acks queued / delivered    : {len(acks)} / {len(delivered)}",
        f"  acks sent twice            : {sum(1 for n in delivered.values() if n > 1)}",
        f"  acks left to staff         : {len(to_staff)} (refused for good, or delivery "
        "state unknown: a reason each)",
        f"  acks silently lost         : {len(silently)}",
        f"  longest wait, nothing done : {tally.longest_idle:.0f} s",
        f"  two leaders at once        : {split_leadership(tally.lives)} job runs under "
        "an older epoch",
        f"  restarts needed by hand    : {tally.by_hand}",
        f"  exits on their own         : {dict(tally.exits_on_their_own)} (restarted, "
        "as systemd's Restart=on-failure)",
        f"  SIGTERM exit statuses      : {Counter(tally.sigterm_codes)}"
        f"{' NOT ALL 0' if bad_sigterm else ' (all 0)'}",
        f"  leaked child processes     : {tally.leaked}",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--mails", type=int, default=300)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--backend", choices=["both", "postgresql", "sqlite"], default="both")
    args = ap.parse_args()
    print(f"madoguchi bench/faults.py (seed {args.seed}, {os.cpu_count()} cores, "
          f"{args.minutes:g} min of faults per backend, {args.mails} mails each)", flush=True)
    with tempfile.TemporaryDirectory(prefix="mado-faults-") as tmp, Dovecot() as server:
        if args.backend in ("both", "postgresql"):
            with postgres_server() as admin:
                url = daemons.fresh_postgres(admin, "madoguchi_bench_faults")
                try:
                    print("\n".join(run_backend("PostgreSQL", url, admin, args, Path(tmp),
                                                server)), flush=True)
                finally:
                    daemons.drop_postgres(admin, "madoguchi_bench_faults")
        if args.backend in ("both", "sqlite"):
            print("\n".join(run_backend("SQLite", None, None, args, Path(tmp), server)),
                  flush=True)


if __name__ == "__main__":
    main()
