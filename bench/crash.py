"""Crash safety: ``kill -9`` the daemon at random moments while mail and FAX arrive.

    .venv/bin/python bench/crash.py [--mails 440] [--faxes 60] [--kills 200] [--seed 11] [--idle]

``--idle``: the mailbox is watched with IMAP IDLE (the default of a real
desk), its fallback poll every 2 s instead of 0.2 s, so that most mail comes
in through polls IDLE asked for, each followed by an outbox round, and the
kills land in those too. The FAX spool is polled every 0.2 s either way.

A real Dovecot mailbox and a FAX spool folder are fed a mixed corpus
(realistic Japanese mail, 30 % follow-ups, and FAX request forms as TIFF
G3/G4 and PDF at both FAX resolutions, some with the number left blank)
at a steady pace, while a controller starts ``madoguchi daemon`` and kills
it with SIGKILL (its whole process group, parse workers included) after a
random moment, again and again. After the last kill the daemon runs until
everything is stored and sent. The same corpus then goes through one
uninterrupted daemon into a second database, and the two are compared:

- every message stored exactly once (mail by Message-ID, FAX by the sha256
  of its file), nothing left in the mailbox or spool;
- threaded as in the uninterrupted run (the same messages share a ticket);
- every acknowledgement delivered at most once, counted at the SMTP
  listener; one whose sending was cut by a kill is never resent but marked
  for staff (see ticketing/outbox.py), and is counted apart;
- the attachment store: every blob's content matches its name, every blob
  the database names exists.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench import daemons  # noqa: E402
from bench.ingest import build_mails  # noqa: E402
from madoguchi.config import SupportNumberSettings  # noqa: E402
from madoguchi.ticketing.acknowledgement import ACK_KIND  # noqa: E402
from madoguchi.ticketing.customers_csv import import_rows, read_rows  # noqa: E402
from madoguchi.ticketing.db import session_factory, transaction, upgrade  # noqa: E402
from madoguchi.ticketing.models import (  # noqa: E402
    Attachment,
    Direction,
    IngestClaim,
    Message,
    OutboxMessage,
    OutboxStatus,
    RawMessage,
)
from madoguchi.ticketing.outbox import INTERRUPTED  # noqa: E402
from tests.faxfactory import form_pdf, send_fax  # noqa: E402
from tests.servers.dovecot import Dovecot  # noqa: E402
from tests.smtp_server import SmtpTestServer, _LoopbackController, _RecordingHandler  # noqa: E402

NUMBERS = ["2031-0001-0008", "2031-0002-0007", "2031-0003-0006", None]
# What the daemon logs once it schedules its jobs; a share of the kills hit
# it before, while it starts.
READY = "this daemon is the scheduler"
STARTUP_KILLS = 0.15
# The last daemon's time to finish (seconds of a quiet run: 10-30).
QUIET_TIMEOUT = 300
# --idle: the mailbox's fallback poll (seconds); IDLE brings the mail in between.
IDLE_FALLBACK = 2.0
CONTAINERS = ("g3-1d", "g3-2d", "g4", "pdf")


@dataclass
class Item:
    kind: str  # "mail" or "fax"
    key: str  # Message-ID, or the sha256 of the FAX file
    raw: bytes
    name: str = ""


@dataclass
class Result:
    kills: int = 0
    lives_with_work: int = 0
    stored: Counter[str] = field(default_factory=Counter)  # corpus key → times stored
    tickets: dict[str, int] = field(default_factory=dict)  # corpus key → ticket id
    acks_queued: int = 0
    acks_delivered: Counter[str] = field(default_factory=Counter)  # Message-ID → deliveries
    interrupted: list[str] = field(default_factory=list)  # Message-IDs marked for staff
    left_in_mailbox: int = 0
    left_in_spool: int = 0
    failed_files: int = 0
    claims_left: int = 0
    blobs: int = 0
    bad_blobs: int = 0
    missing_blobs: int = 0
    stray_temporaries: int = 0
    seconds: float = 0.0


def build_corpus(mails: int, faxes: int, seed: int, workdir: Path) -> list[Item]:
    rng = random.Random(seed)
    items = [
        Item("mail", f"bench-{i}@example.jp", raw)
        for i, (raw, _) in enumerate(build_mails(mails, 0.3, rng))
    ]
    for i in range(faxes):
        number = NUMBERS[i % len(NUMBERS)]
        container = CONTAINERS[i % len(CONTAINERS)]
        resolution = "fine" if i % 3 else "standard"
        pdf = form_pdf(number, [f"FAX {i}: ライセンスの追加をお願いします。", "担当 山田"])
        path = send_fax(pdf, workdir / f"fax-{i:03d}{'.pdf' if container == 'pdf' else '.tif'}",
                        resolution=resolution, container=container, seed=seed * 1000 + i)
        raw = path.read_bytes()
        items.append(Item("fax", hashlib.sha256(raw).hexdigest(), raw, path.name))
    # FAX spread evenly through the mail; mail keeps its order (replies after originals).
    rng.shuffle(fax_items := [it for it in items if it.kind == "fax"])
    mail_items = [it for it in items if it.kind == "mail"]
    step = max(1, len(mail_items) // max(1, len(fax_items)))
    merged: list[Item] = []
    for i, mail in enumerate(mail_items):
        merged.append(mail)
        if i % step == step - 1 and fax_items:
            merged.append(fax_items.pop())
    return merged + fax_items


class Desk:
    """One database, mailbox, spool and SMTP listener, and the daemon's config for them."""

    def __init__(self, workdir: Path, server: Dovecot, name: str, database_url: str | None,
                 *, handler: _RecordingHandler | None = None, imap_port: int | None = None,
                 **config: Any) -> None:
        """``handler``: the SMTP listener's (default: accept all); ``imap_port``: where
        the daemon finds the mailbox (a proxy's); ``config``: more for ``write_config``."""
        self.workdir = workdir / name
        self.workdir.mkdir()
        self.url = database_url or f"sqlite:///{self.workdir / 'desk.db'}"
        upgrade(self.url)
        self.engine = create_engine(self.url)
        with transaction(session_factory(self.engine)) as session:
            csv_text = (ROOT / "demo" / "customers.csv").read_text(encoding="utf-8")
            import_rows(session, read_rows(csv_text, SupportNumberSettings()))
        self.account = server.add_user(name)
        self.handler = handler or _RecordingHandler()
        self.smtp = SmtpTestServer(_LoopbackController(self.handler), self.handler).start()
        self.spool = self.workdir / "spool"
        self.spool.mkdir()
        self.storage = self.workdir / "storage"
        imap = self.account if imap_port is None else _Via(self.account, imap_port)
        config.setdefault("interval", 0.2)
        # A daemon killed during DATA leaves its row ``delivering`` until the
        # lease (5 connection timeouts + the data timeout) is over: with the
        # default 600 s that outlasts the run. The local listener answers at once.
        config.setdefault("smtp", {"data_timeout_seconds": 10})
        self.config = daemons.write_config(
            self.workdir / "madoguchi.toml", database_url=self.url, storage=self.storage,
            imap=imap, smtp_port=self.smtp.port, batch=20, spool=self.spool, **config,
        )
        self.log = self.workdir / "daemon.log"

    def feed(self, item: Item) -> None:
        if item.kind == "mail":
            self.account.append(item.raw)
            return
        # As a FAX server does: written under a name not taken, then renamed.
        part = self.spool / f"{item.name}.part"
        part.write_bytes(item.raw)
        part.rename(self.spool / item.name)

    def quiet(self, expected: int) -> bool:
        """Everything fed is stored, filed away and sent (or given up)."""
        return not self.left(expected)

    def left(self, expected: int) -> list[str]:
        """What keeps the desk from being quiet, in words (empty: quiet)."""
        with Session(self.engine) as s:
            inbound = s.scalar(select(func.count()).select_from(Message)
                               .where(Message.direction == Direction.IN)) or 0
            claims = s.scalar(select(func.count()).select_from(IngestClaim)) or 0
            unsent = s.execute(select(OutboxMessage.status, func.count())
                               .where(OutboxMessage.status.in_([
                                   OutboxStatus.PENDING, OutboxStatus.SENDING,
                                   OutboxStatus.DELIVERING]))
                               .group_by(OutboxMessage.status)).all()
        spool_left = sorted(p.name for p in self.spool.iterdir() if p.is_file())
        in_inbox = len(self.account.messages("INBOX"))
        return [what for what, bad in [
            (f"{inbound} of {expected} messages stored", inbound < expected),
            (f"{claims} ingest claims held", claims > 0),
            ("outbox: " + ", ".join(f"{n} {st.value}" for st, n in unsent), bool(unsent)),
            (f"left in the spool: {', '.join(spool_left)}", bool(spool_left)),
            (f"{in_inbox} mails left in INBOX", in_inbox > 0),
        ] if bad]

    def close(self) -> None:
        self.smtp.stop()
        self.engine.dispose()


@dataclass
class _Via:
    """A Dovecot account reached through another port (a proxy in front of the server)."""

    account: Any
    port: int

    def __getattr__(self, name: str) -> Any:
        return getattr(self.account, name)


def run(desk: Desk, corpus: list[Item], *, kills: int, rng: random.Random,
        life: tuple[float, float] = (0.05, 2.5)) -> Result:
    result = Result()
    started = time.perf_counter()
    # Feeding spans the kills: the daemon is always busy when it dies.
    pace = kills * (sum(life) / 2 + 2.0) / len(corpus) if kills else 0.0
    feeder = threading.Thread(target=lambda: [
        (desk.feed(item), time.sleep(pace)) for item in corpus
    ], daemon=True)
    feeder.start()
    stored_before = 0
    while result.kills < kills or feeder.is_alive():
        ready_before = _lives_ready(desk.log)
        proc = daemons.start(desk.config, desk.log)
        if rng.random() < STARTUP_KILLS:
            time.sleep(rng.uniform(0.05, 2.0))  # while it starts
        else:
            # A daemon takes a second or more to start (imports, worker
            # processes): most deaths are timed from when it is working.
            with contextlib.suppress(TimeoutError):
                daemons.wait_for(lambda n=ready_before: _lives_ready(desk.log) > n, 60,
                                 "the daemon to start")
            time.sleep(rng.uniform(*life))
        daemons.kill(proc)
        result.kills += 1
        with Session(desk.engine) as s:
            stored = s.scalar(select(func.count()).select_from(Message)) or 0
        result.lives_with_work += stored > stored_before
        stored_before = stored
    feeder.join()
    proc = daemons.start(desk.config, desk.log)
    try:
        _wait_quiet(desk, len(corpus), proc)
        time.sleep(2)  # a few more polls and outbox rounds: nothing more may happen
    finally:
        daemons.stop(proc)
    result.seconds = time.perf_counter() - started
    collect(desk, corpus, result)
    return result


def _wait_quiet(desk: Desk, expected: int, proc: Any, timeout: float = QUIET_TIMEOUT) -> None:
    """Until the last daemon has done everything; else an error that says what is left."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = desk.left(expected)
        if not left:
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    state = (f"the daemon exited ({proc.returncode})" if proc.poll() is not None
             else f"not quiet after {timeout:g} s")
    tail = desk.log.read_text(errors="replace").splitlines()[-40:] if desk.log.exists() else []
    raise TimeoutError(f"{desk.workdir.name}: {state}: " + "; ".join(left)
                       + "\nlast lines of the daemon's log:\n" + "\n".join(tail))


def _lives_ready(log: Path) -> int:
    return log.read_text(errors="replace").count(READY) if log.exists() else 0


def collect(desk: Desk, corpus: list[Item], result: Result) -> None:
    keys = {item.key for item in corpus}
    with Session(desk.engine) as s:
        for message_id, sha256, ticket_id in s.execute(
            select(Message.message_id, RawMessage.sha256, Message.ticket_id)
            .join(RawMessage, Message.raw_id == RawMessage.id)
            .where(Message.direction == Direction.IN)
        ):
            key = message_id if message_id in keys else sha256
            result.stored[key] += 1
            result.tickets[key] = ticket_id
        acks = s.execute(select(OutboxMessage.message_id, OutboxMessage.status,
                                OutboxMessage.last_error)
                         .where(OutboxMessage.kind == ACK_KIND)).all()
        result.acks_queued = len(acks)
        result.interrupted = [m for m, status, error in acks
                              if status == OutboxStatus.FAILED and error == INTERRUPTED]
        result.claims_left = s.scalar(select(func.count()).select_from(IngestClaim)) or 0
        named = {*s.scalars(select(RawMessage.sha256)), *s.scalars(select(Attachment.sha256))}
    parser = BytesHeaderParser(policy=compat32)
    for mail in desk.smtp.messages:
        result.acks_delivered[str(parser.parsebytes(mail.raw).get("Message-ID", ""))] += 1
    result.left_in_mailbox = len(desk.account.messages("INBOX"))
    result.left_in_spool = sum(1 for p in desk.spool.iterdir() if p.is_file())
    result.failed_files = sum(1 for p in (desk.spool / "failed").iterdir() if p.is_file())
    on_disk = set()
    for path in desk.storage.rglob("*"):
        if not path.is_file():
            continue
        if path.parent.name == "tmp":
            result.stray_temporaries += 1
            continue
        on_disk.add(path.name)
        result.blobs += 1
        result.bad_blobs += hashlib.sha256(path.read_bytes()).hexdigest() != path.name
    result.missing_blobs = len(named - on_disk)


@dataclass
class Verdict:
    lost: int
    duplicated: int
    threading_differences: int
    acks_twice: int
    acks_missing: int  # queued, not delivered and not marked for staff
    left_behind: int  # in the mailbox or spool, in failed/, or a claim
    store_damage: int  # blobs not matching their name, or named but missing
    kills: int
    lines: list[str]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.threading_differences
                    or self.acks_twice or self.acks_missing or self.left_behind
                    or self.store_damage)


def compare(corpus: list[Item], crashed: Result, reference: Result) -> Verdict:
    keys = [item.key for item in corpus]
    lost = sum(1 for k in keys if crashed.stored[k] == 0)
    duplicated = sum(1 for k in keys if crashed.stored[k] > 1)

    def partition(result: Result) -> set[frozenset[str]]:
        groups: dict[int, set[str]] = {}
        for key in keys:
            if key in result.tickets:
                groups.setdefault(result.tickets[key], set()).add(key)
        return {frozenset(g) for g in groups.values()}

    differences = len(partition(crashed) ^ partition(reference))
    twice = sum(1 for n in crashed.acks_delivered.values() if n > 1)
    delivered = set(crashed.acks_delivered)
    missing = crashed.acks_queued - len(delivered) - sum(
        1 for m in crashed.interrupted if m not in delivered)
    interrupted_delivered = sum(1 for m in crashed.interrupted if m in delivered)
    once = sum(1 for n in crashed.acks_delivered.values() if n == 1)
    mails = sum(1 for it in corpus if it.kind == "mail")
    lines = [
        f"corpus                         : {len(corpus)} messages "
        f"({mails} mail, {len(corpus) - mails} FAX)",
        f"kills (SIGKILL, process group) : {crashed.kills} "
        f"({crashed.lives_with_work} of the lives stored something)",
        f"run time with kills            : {crashed.seconds:.0f} s "
        f"(uninterrupted: {reference.seconds:.0f} s)",
        f"messages lost                  : {lost}",
        f"messages stored twice          : {duplicated}",
        f"threading vs uninterrupted run : {differences} differing tickets "
        f"({len(partition(crashed))} tickets / {len(partition(reference))} uninterrupted)",
        f"left in mailbox / spool        : {crashed.left_in_mailbox} / {crashed.left_in_spool} "
        f"(FAX files in failed/: {crashed.failed_files}; claims left: {crashed.claims_left})",
        f"acknowledgements queued        : {crashed.acks_queued} "
        f"(uninterrupted run: {reference.acks_queued})",
        f"  delivered exactly once       : {once}",
        f"  delivered twice or more      : {twice}",
        f"  cut by a kill, left to staff : {len(crashed.interrupted)} "
        f"({interrupted_delivered} of them had reached the listener)",
        f"  neither delivered nor marked : {missing}",
        f"attachment store               : {crashed.blobs} blobs, {crashed.bad_blobs} not "
        f"matching their name, {crashed.missing_blobs} named by the database but missing, "
        f"{crashed.stray_temporaries} stray temporary files",
    ]
    left = (crashed.left_in_mailbox + crashed.left_in_spool + crashed.failed_files
            + crashed.claims_left)
    damage = crashed.bad_blobs + crashed.missing_blobs
    return Verdict(lost, duplicated, differences, twice, missing, left, damage,
                   crashed.kills, lines)


def crash_test(*, mails: int, faxes: int, kills: int, seed: int, workdir: Path,
               database_url: str | None = None, reference_url: str | None = None,
               life: tuple[float, float] = (0.05, 2.5), idle: bool = False) -> Verdict:
    corpus = build_corpus(mails, faxes, seed, workdir)
    watch: dict[str, Any] = {"idle": True, "imap_interval": IDLE_FALLBACK} if idle else {}
    with Dovecot() as server:
        crashed_desk = Desk(workdir, server, "crashed", database_url, **watch)
        reference_desk = Desk(workdir, server, "reference", reference_url, **watch)
        try:
            crashed = run(crashed_desk, corpus, kills=kills, rng=random.Random(seed), life=life)
            reference = run(reference_desk, corpus, kills=0, rng=random.Random(seed))
        finally:
            crashed_desk.close()
            reference_desk.close()
    return compare(corpus, crashed, reference)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mails", type=int, default=440)
    ap.add_argument("--faxes", type=int, default=60)
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--idle", action="store_true",
                    help=f"watch the mailbox with IDLE (fallback poll every {IDLE_FALLBACK:g} s)")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mado-crash-") as tmp:
        verdict = crash_test(mails=args.mails, faxes=args.faxes, kills=args.kills,
                             seed=args.seed, workdir=Path(tmp), idle=args.idle)
    watch = (f"IMAP IDLE, fallback poll every {IDLE_FALLBACK:g} s" if args.idle
             else "IMAP polled every 0.2 s, no IDLE")
    print(f"madoguchi bench/crash.py  (seed {args.seed}, {os.cpu_count()} cores, SQLite, {watch}, "
          f"daemon killed 0.05-2.5 s after it is up, {STARTUP_KILLS:.0%} of the time "
          f"while it starts; load {load:.2f} at start, {os.getloadavg()[1]:.2f} "
          "5-minute average at the end)")
    print("\n".join(verdict.lines))
    print(f"verdict                        : {'PASS' if verdict.ok else 'FAIL'}")
    sys.exit(0 if verdict.ok else 1)


if __name__ == "__main__":
    main()
