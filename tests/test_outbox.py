"""The transactional outbox: enqueue once, deliver over real SMTP, retry, never twice."""

from __future__ import annotations

import json
import random
import signal
import smtplib
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from madoguchi.config import ConfigError, Settings, load_settings
from madoguchi.config.mail import SmtpSettings
from madoguchi.ticketing.backoff import backoff_delay
from madoguchi.ticketing.db import make_engine, session_factory
from madoguchi.ticketing.models import (
    Channel,
    OutboxMessage,
    OutboxStatus,
    Ticket,
    TicketStatus,
)
from madoguchi.ticketing.outbox import (
    INTERRUPTED,
    STOPPED_BEFORE_DATA,
    UNCONFIRMED,
    OutboxSender,
    SendReport,
    claim_next,
    enqueue,
    lease_for,
)
from madoguchi.ticketing.smtp_client import open_smtp
from tests.postgres import PostgresDatabases

if TYPE_CHECKING:
    from tests.smtp_server import SmtpTestServer

# The SMTP server fixtures (imported here, not above, so pytest loads the

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 24, 13, 15, tzinfo=UTC)  # 22:15 in Tokyo, a Tuesday
CUSTOMER = "yamada@sakura.example.jp"


class Clock:
    """The sender's idea of now, moved by the test: nobody sleeps."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class OutboxDb:
    url: str
    sessions: sessionmaker[Session]

    def rows(self) -> list[OutboxMessage]:
        with self.sessions() as s:
            return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))

    def row(self, row_id: int) -> OutboxMessage:
        with self.sessions() as s:
            return s.get_one(OutboxMessage, row_id)


def _db(url: str) -> Iterator[OutboxDb]:
    engine = make_engine(url)
    try:
        yield OutboxDb(url, session_factory(engine))
    finally:
        engine.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[OutboxDb]:
    """The suite's migrated, empty database: on SQLite, then on PostgreSQL."""
    yield from _db(database_url)


@pytest.fixture
def pg_db(postgres_databases: PostgresDatabases) -> Iterator[OutboxDb]:
    """A migrated, empty PostgreSQL database, for what only PostgreSQL does."""
    yield from _db(postgres_databases.new())


def settings_for(db: OutboxDb, tmp_path: Path, **smtp: object) -> Settings:
    return load_settings(
        None, database_url=db.url, storage_dir=tmp_path / "storage", sources=[], smtp=smtp
    )


def server_settings(db: OutboxDb, tmp_path: Path, server: SmtpTestServer,
                    **smtp: object) -> Settings:
    return settings_for(db, tmp_path, **server.smtp_settings(**smtp))


def mail(to: str = CUSTOMER, subject: str = "受付のお知らせ", n: int = 1) -> EmailMessage:
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = "サポートセンター <support@example.co.jp>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<test.{n}.{uuid.uuid4().hex[:8]}@example.co.jp>"
    msg.set_content(f"本文 {n}\n", charset="utf-8", cte="base64")
    return msg


def queue(db: OutboxDb, key: str = "ack:T-2026-000001", *, now: datetime = T0,
          message: EmailMessage | None = None) -> int:
    with db.sessions() as s, s.begin():
        row = enqueue(s, kind="ack", dedupe_key=key, ticket=None,
                      message=message or mail(), now=now)
        assert row is not None
        return row.id


def sender(settings: Settings, db: OutboxDb, clock: Clock,
           smtp_factory: Callable[[SmtpSettings], smtplib.SMTP] = open_smtp) -> OutboxSender:
    return OutboxSender(settings, db.sessions, now=clock, smtp_factory=smtp_factory,
                        rng=random.Random(7))


# --- enqueue ---------------------------------------------------------------------------


def test_enqueue_twice_with_one_dedupe_key_keeps_the_first_and_returns_none(
    db: OutboxDb,
) -> None:
    first = queue(db, "ack:T-2026-000001", message=mail(subject="一通目"))
    with db.sessions() as s, s.begin():
        again = enqueue(s, kind="ack", dedupe_key="ack:T-2026-000001", ticket=None,
                        message=mail(subject="二通目"), now=T0)
    assert again is None
    rows = db.rows()
    assert [r.id for r in rows] == [first]
    assert "一通目".encode() not in rows[0].raw  # encoded, but it is the first one
    assert rows[0].status is OutboxStatus.PENDING
    assert rows[0].attempts == 0
    assert rows[0].next_attempt_at == T0


def test_enqueue_belongs_to_the_ticket_change_and_rolls_back_with_it(db: OutboxDb) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), db.sessions() as s, s.begin():
        ticket = Ticket(number="T-2026-000009", status=TicketStatus.OPEN,
                        channel=Channel.EMAIL, received_at=T0)
        s.add(ticket)
        row = enqueue(s, kind="ack", dedupe_key="ack:T-2026-000009", ticket=ticket,
                      message=mail(), now=T0)
        assert row is not None
        assert row.ticket_id == ticket.id
        raise Boom
    assert db.rows() == []


def test_enqueue_stores_the_envelope_and_crlf_bytes_without_bcc(db: OutboxDb) -> None:
    message = mail(to="Yamada <yamada@sakura.example.jp>")
    message["Cc"] = "sato@sakura.example.jp"
    message["Bcc"] = "audit@example.co.jp"
    queue(db, message=message)
    row = db.rows()[0]
    assert row.mail_from == "support@example.co.jp"
    assert row.rcpt_to == [CUSTOMER, "sato@sakura.example.jp", "audit@example.co.jp"]
    assert b"audit@" not in row.raw
    assert b"\r\n" in row.raw and b"\n" not in row.raw.replace(b"\r\n", b"")
    assert row.message_id == message["Message-ID"]


def test_enqueue_refuses_a_header_carrying_a_line_break(db: OutboxDb) -> None:
    message = mail()
    message.set_raw("Subject", "hello\r\nBcc: victim@example.org")
    with db.sessions() as s, s.begin(), pytest.raises(ValueError, match="Subject"):
        enqueue(s, kind="ack", dedupe_key="k", ticket=None, message=message, now=T0)


# --- delivery --------------------------------------------------------------------------


def test_due_row_is_delivered_byte_for_byte_and_marked_sent(
    db: OutboxDb, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    row_id = queue(db)
    clock = Clock(T0 + timedelta(seconds=2))

    report = sender(server_settings(db, tmp_path, smtp_server), db, clock).send_due()

    assert report.sent == [row_id]
    stored = db.row(row_id)
    assert stored.status is OutboxStatus.SENT
    assert stored.sent_at == clock.now
    assert stored.attempts == 1
    assert stored.last_error is None
    [got] = smtp_server.messages
    assert got.mail_from == "support@example.co.jp"
    assert got.rcpt_tos == (CUSTOMER,)
    assert got.raw == stored.raw


def test_nothing_is_sent_before_its_time_or_twice(
    db: OutboxDb, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    queue(db, "later", now=T0 + timedelta(minutes=5))
    out = sender(server_settings(db, tmp_path, smtp_server), db, Clock())
    assert out.send_due().sent == []
    assert smtp_server.messages == []

    out = sender(server_settings(db, tmp_path, smtp_server), db, Clock(T0 + timedelta(minutes=5)))
    assert len(out.send_due().sent) == 1
    assert out.send_due().sent == []
    assert len(smtp_server.messages) == 1


def test_send_due_takes_at_most_limit_rows_oldest_first(
    db: OutboxDb, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    ids = [queue(db, f"k{i}", now=T0 + timedelta(seconds=i), message=mail(n=i))
           for i in range(3)]
    out = sender(server_settings(db, tmp_path, smtp_server), db, Clock(T0 + timedelta(hours=1)))
    assert out.send_due(limit=2).sent == ids[:2]
    assert out.send_due(limit=2).sent == ids[2:]


def test_greylisted_451_is_retried_with_backoff_then_sent_when_the_server_recovers(
    db: OutboxDb, tmp_path: Path, smtp_tempfail_server: SmtpTestServer
) -> None:
    server = smtp_tempfail_server
    row_id = queue(db)
    clock = Clock()
    out = sender(server_settings(db, tmp_path, server, backoff_base_seconds=60), db, clock)

    assert out.send_due().retrying == [row_id]
    row = db.row(row_id)
    assert row.status is OutboxStatus.PENDING
    assert row.attempts == 1
    assert "451" in (row.last_error or "")
    assert T0 + timedelta(seconds=30) <= row.next_attempt_at <= T0 + timedelta(seconds=60)

    assert out.send_due() == SendReport()  # not due yet: nothing happens
    clock.now = row.next_attempt_at
    assert out.send_due().retrying == [row_id]
    second = db.row(row_id)
    assert second.attempts == 2
    # The second wait is drawn from twice the first one's range.
    assert clock.now + timedelta(seconds=60) <= second.next_attempt_at
    assert second.next_attempt_at <= clock.now + timedelta(seconds=120)

    server.accept()
    clock.now = second.next_attempt_at
    assert out.send_due().sent == [row_id]
    done = db.row(row_id)
    assert done.status is OutboxStatus.SENT
    assert done.attempts == 3
    assert len(server.messages) == 1


def test_connection_refused_backs_off_and_leaves_the_other_rows_for_the_next_round(
    db: OutboxDb, tmp_path: Path, smtp_closed_port: int
) -> None:
    first, second = queue(db, "a"), queue(db, "b", message=mail(n=2))
    settings = settings_for(db, tmp_path, port=smtp_closed_port, timeout_seconds=5)

    report = sender(settings, db, Clock()).send_due()

    assert report.retrying == [first]
    assert report.sent == report.failed == []
    row = db.row(first)
    assert row.status is OutboxStatus.PENDING
    assert "refused" in (row.last_error or "").lower()
    untouched = db.row(second)
    assert (untouched.status, untouched.attempts) == (OutboxStatus.PENDING, 0)


def test_421_closing_the_connection_ends_the_round(
    db: OutboxDb, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    smtp_server.refuse(421)
    first, second = queue(db, "a"), queue(db, "b", message=mail(n=2))
    report = sender(server_settings(db, tmp_path, smtp_server), db, Clock()).send_due()
    assert report.retrying == [first]
    assert "421" in (db.row(first).last_error or "")
    assert db.row(second).attempts == 0


@pytest.mark.parametrize(("code", "stage"), [(550, "rcpt"), (554, "data")])
def test_permanent_refusal_fails_the_row_at_once(
    db: OutboxDb, tmp_path: Path, smtp_server: SmtpTestServer, code: int, stage: str
) -> None:
    smtp_server.refuse(code, at=stage)  # type: ignore[arg-type]
    row_id = queue(db)
    report = sender(server_settings(db, tmp_path, smtp_server), db, Clock()).send_due()
    assert report.failed == [row_id]
    row = db.row(row_id)
    assert row.status is OutboxStatus.FAILED
    assert row.attempts == 1
    assert str(code) in (row.last_error or "")


def test_permanent_refusal_of_one_row_does_not_stop_the_next(
    db: OutboxDb, tmp_path: Path, smtp_permfail_server: SmtpTestServer
) -> None:
    ids = [queue(db, "a"), queue(db, "b", message=mail(n=2))]
    report = sender(server_settings(db, tmp_path, smtp_permfail_server), db, Clock()).send_due()
    assert report.failed == ids


# --- the two windows after the final dot: never sent twice -----------------------------


def test_connection_dropped_after_the_whole_message_is_left_to_staff_never_resent(
    db: OutboxDb, tmp_path: Path, smtp_dropping_server: SmtpTestServer
) -> None:
    # The server had the whole message and hung up unanswered: it may deliver it.
    row_id = queue(db)
    clock = Clock()
    out = sender(server_settings(db, tmp_path, smtp_dropping_server), db, clock)
    assert out.send_due().interrupted == [row_id]
    row = db.row(row_id)
    assert row.status is OutboxStatus.FAILED
    assert (row.last_error or "").startswith(UNCONFIRMED)
    assert "check the recipient's mailbox" in (row.last_error or "")

    smtp_dropping_server.accept()
    clock.advance(days=1)
    assert out.send_due() == SendReport()
    assert db.row(row_id).status is OutboxStatus.FAILED


def test_server_slow_to_answer_the_final_dot_is_waited_for_and_sent_once(
    db: OutboxDb, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    # Keeps the message, answers 2 s later: longer than every other step may take.
    row_id = queue(db)
    smtp_server.stall("data")
    threading.Timer(2.0, smtp_server.accept).start()
    settings = server_settings(db, tmp_path, smtp_server, timeout_seconds=0.5,
                               data_timeout_seconds=30)
    clock = Clock()
    out = sender(settings, db, clock)
    assert out.send_due().sent == [row_id]
    clock.advance(hours=1)
    assert out.send_due() == SendReport()
    assert db.row(row_id).status is OutboxStatus.SENT
    assert len(smtp_server.messages) == 1


def test_no_answer_to_the_final_dot_within_the_data_timeout_is_left_to_staff(
    db: OutboxDb, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    row_id = queue(db)
    smtp_server.stall("data")
    settings = server_settings(db, tmp_path, smtp_server, data_timeout_seconds=1)
    clock = Clock()
    out = sender(settings, db, clock)
    assert out.send_due().interrupted == [row_id]
    smtp_server.accept()  # the server delivers what it kept
    row = db.row(row_id)
    assert row.status is OutboxStatus.FAILED
    assert "no answer to the end of the message after 1 s" in (row.last_error or "")
    clock.advance(days=1)
    assert out.send_due() == SendReport()
    assert len(smtp_server.messages) == 1


def test_the_delivering_lease_outlasts_the_wait_for_the_final_answer() -> None:
    smtp = SmtpSettings(timeout_seconds=30, data_timeout_seconds=600)
    assert lease_for(smtp, OutboxStatus.DELIVERING) > timedelta(seconds=600)


def test_connection_closed_before_the_greeting_is_retried(
    db: OutboxDb, tmp_path: Path, smtp_hangup_server: SmtpTestServer
) -> None:
    row_id = queue(db)
    report = sender(server_settings(db, tmp_path, smtp_hangup_server), db, Clock()).send_due()
    assert report.retrying == [row_id]
    assert db.row(row_id).status is OutboxStatus.PENDING


def test_temporary_failures_give_up_after_max_attempts(
    db: OutboxDb, tmp_path: Path, smtp_tempfail_server: SmtpTestServer
) -> None:
    row_id = queue(db)
    clock = Clock()
    out = sender(server_settings(db, tmp_path, smtp_tempfail_server, max_attempts=3), db, clock)
    for _ in range(2):
        assert out.send_due().retrying == [row_id]
        clock.advance(days=1)
    assert out.send_due().failed == [row_id]
    row = db.row(row_id)
    assert row.status is OutboxStatus.FAILED
    assert (row.last_error or "").startswith("gave up after 3 attempts: ")
    clock.advance(days=1)
    assert out.send_due().failed == []


def test_backoff_doubles_from_the_base_up_to_the_cap_with_jitter() -> None:
    smtp = SmtpSettings(backoff_base_seconds=60, backoff_max_seconds=600)
    rng = random.Random(1)
    for attempts, ceiling in [(1, 60), (2, 120), (3, 240), (4, 480), (5, 600), (40, 600)]:
        for _ in range(20):
            delay = backoff_delay(attempts, base_seconds=smtp.backoff_base_seconds,
                                  max_seconds=smtp.backoff_max_seconds, rng=rng).total_seconds()
            assert ceiling / 2 <= delay <= ceiling


# --- crashes ---------------------------------------------------------------------------


class ProcessDied(BaseException):
    """Stands for the process being killed: not an Exception, nothing catches it."""


def crash_after_delivery(smtp: SmtpSettings) -> smtplib.SMTP:
    conn = open_smtp(smtp)
    sent_whole = [False]

    def send(data: bytes | str) -> None:
        smtplib.SMTP.send(conn, data)
        sent_whole[0] = isinstance(data, bytes) and data.endswith(b"\r\n.\r\n")

    def getreply() -> tuple[int, bytes]:
        reply = smtplib.SMTP.getreply(conn)
        if sent_whole[0]:
            raise ProcessDied  # the server has it; we die before writing "sent"
        return reply

    conn.send = send  # type: ignore[method-assign]
    conn.getreply = getreply  # type: ignore[method-assign]
    return conn


def test_row_left_delivering_by_a_crash_is_marked_failed_and_never_resent(
    db: OutboxDb, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    row_id = queue(db)
    settings = server_settings(db, tmp_path, smtp_server)
    clock = Clock()
    with pytest.raises(ProcessDied):
        sender(settings, db, clock, smtp_factory=crash_after_delivery).send_due()
    assert db.row(row_id).status is OutboxStatus.DELIVERING
    assert len(smtp_server.messages) == 1

    # The restarted sender: nothing within the short lease of `delivering`...
    clock.now = T0 + lease_for(settings.smtp, OutboxStatus.DELIVERING) - timedelta(seconds=1)
    assert sender(settings, db, clock).send_due() == SendReport()
    assert db.row(row_id).status is OutboxStatus.DELIVERING
    # ... and once it is over.
    clock.now = T0 + lease_for(settings.smtp, OutboxStatus.DELIVERING)
    restarted = sender(settings, db, clock)
    report = restarted.send_due()
    assert report.interrupted == [row_id]
    assert report.sent == []
    row = db.row(row_id)
    assert row.status is OutboxStatus.FAILED
    assert row.last_error == INTERRUPTED
    clock.advance(days=1)
    assert restarted.send_due() == SendReport()
    assert len(smtp_server.messages) == 1


def test_row_another_worker_is_sending_within_its_lease_is_left_alone(
    db: OutboxDb, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    row_id = queue(db)
    settings = server_settings(db, tmp_path, smtp_server)
    with db.sessions() as s, s.begin():
        assert claim_next(s, now=T0, lease=lease_for(settings.smtp)) is not None
    clock = Clock(T0 + lease_for(settings.smtp) - timedelta(seconds=1))
    assert sender(settings, db, clock).send_due() == SendReport()
    assert db.row(row_id).status is OutboxStatus.SENDING
    assert smtp_server.messages == []


def test_delivering_lease_is_a_few_timeouts_and_sending_lease_much_longer() -> None:
    smtp = SmtpSettings(timeout_seconds=30, data_timeout_seconds=600)
    assert lease_for(smtp, OutboxStatus.DELIVERING) == timedelta(seconds=150 + 600)
    assert lease_for(smtp) == lease_for(smtp, OutboxStatus.SENDING) == timedelta(seconds=600)


def crash_at_rcpt(smtp: SmtpSettings) -> smtplib.SMTP:
    conn = open_smtp(smtp)

    def rcpt(*args: object, **kwargs: object) -> tuple[int, bytes]:
        raise ProcessDied  # before the server could hold anything

    conn.rcpt = rcpt  # type: ignore[method-assign]
    return conn


def test_row_left_sending_by_a_crash_is_sent_again_after_the_lease_once(
    db: OutboxDb, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    row_id = queue(db)
    settings = server_settings(db, tmp_path, smtp_server)
    clock = Clock()
    with pytest.raises(ProcessDied):
        sender(settings, db, clock, smtp_factory=crash_at_rcpt).send_due()
    assert db.row(row_id).status is OutboxStatus.SENDING

    clock.now = T0 + lease_for(settings.smtp) - timedelta(seconds=1)
    assert sender(settings, db, clock).send_due() == SendReport()
    assert smtp_server.messages == []

    clock.now = T0 + lease_for(settings.smtp)
    restarted = sender(settings, db, clock)
    report = restarted.send_due()
    assert report.requeued == [row_id]
    assert report.sent == [row_id]
    assert report.interrupted == report.failed == []
    row = db.row(row_id)
    assert row.status is OutboxStatus.SENT
    assert row.attempts == 2  # the interrupted attempt counts
    assert row.last_error is None
    clock.advance(days=1)
    assert restarted.send_due() == SendReport()
    assert len(smtp_server.messages) == 1


def test_row_left_sending_with_its_attempts_used_up_fails(
    db: OutboxDb, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    row_id = queue(db)
    settings = server_settings(db, tmp_path, smtp_server, max_attempts=1)
    clock = Clock()
    with pytest.raises(ProcessDied):
        sender(settings, db, clock, smtp_factory=crash_at_rcpt).send_due()
    clock.now = T0 + lease_for(settings.smtp)
    report = sender(settings, db, clock).send_due()
    assert (report.failed, report.requeued, report.sent) == ([row_id], [], [])
    row = db.row(row_id)
    assert row.status is OutboxStatus.FAILED
    assert row.last_error == f"gave up after 1 attempts: {STOPPED_BEFORE_DATA}"
    assert smtp_server.messages == []


def test_sender_overtaken_before_data_sends_nothing(
    db: OutboxDb, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    """A live sender slower than its lease: the row was sent by another; no duplicate."""
    row_id = queue(db)
    settings = server_settings(db, tmp_path, smtp_server)
    late = Clock(T0 + lease_for(settings.smtp))
    others: list[SendReport] = []

    def slow_at_rcpt(smtp: SmtpSettings) -> smtplib.SMTP:
        conn = open_smtp(smtp)

        def rcpt(*args: object, **kwargs: object) -> tuple[int, bytes]:
            reply = smtplib.SMTP.rcpt(conn, *args, **kwargs)  # type: ignore[arg-type]
            others.append(sender(settings, db, late).send_due())  # meanwhile, elsewhere
            return reply

        conn.rcpt = rcpt  # type: ignore[method-assign]
        return conn

    slow = sender(settings, db, Clock(), smtp_factory=slow_at_rcpt).send_due()

    assert slow == SendReport()
    assert others == [SendReport(sent=[row_id], requeued=[row_id])]
    row = db.row(row_id)
    assert (row.status, row.attempts) == (OutboxStatus.SENT, 2)
    assert len(smtp_server.messages) == 1


def test_desk_status_counts_a_delivering_row_as_sending(
    db: OutboxDb, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    from madoguchi.health import desk_status

    queue(db)
    with pytest.raises(ProcessDied):
        sender(server_settings(db, tmp_path, smtp_server), db, Clock(),
               smtp_factory=crash_after_delivery).send_due()
    queue(db, "ack:T-2026-000002", message=mail(n=2))
    with db.sessions() as s:
        status = desk_status(settings_for(db, tmp_path), s, T0, history=False)
    assert status.outbox == {"pending": 1, "sending": 1, "failed": 0}


# --- crashes of a real sender process --------------------------------------------------

# A sender process: the database, the storage dir and the smtp section in argv[1].
SENDER_PROCESS = """
import json, sys
from madoguchi.config import load_settings
from madoguchi.ticketing.backoff import backoff_delay
from madoguchi.ticketing.db import make_engine, session_factory
from madoguchi.ticketing.outbox import OutboxSender

args = json.loads(sys.argv[1])
settings = load_settings(None, database_url=args["url"], storage_dir=args["storage"],
                         sources=[], smtp=args["smtp"])
print(OutboxSender(settings, session_factory(make_engine(args["url"]))).send_due(), flush=True)
"""
# The killed sender must still be waiting for the stalled reply when it dies.
PROCESS_SMTP_TIMEOUT = 5


def start_sender_process(db: OutboxDb, tmp_path: Path,
                         server: SmtpTestServer) -> subprocess.Popen[bytes]:
    args = {"url": db.url, "storage": str(tmp_path / "storage"),
            "smtp": server.smtp_settings(timeout_seconds=PROCESS_SMTP_TIMEOUT)}
    return subprocess.Popen(
        [sys.executable, "-c", SENDER_PROCESS, json.dumps(args, default=str)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT,
    )


def kill_when_stalled(proc: subprocess.Popen[bytes], server: SmtpTestServer) -> None:
    try:
        stalled = server.wait_stalled(timeout=60)
    finally:
        proc.kill()  # SIGKILL: no chance to clean up
        out, _ = proc.communicate(timeout=30)
    assert stalled, f"the sender never reached the stall: {out.decode(errors='replace')}"
    assert proc.returncode == -signal.SIGKILL


def test_sender_process_killed_before_data_is_sent_again_exactly_once(
    db: OutboxDb, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    row_id = queue(db, now=datetime.now(UTC) - timedelta(seconds=1))
    smtp_server.stall("rcpt")
    proc = start_sender_process(db, tmp_path, smtp_server)
    kill_when_stalled(proc, smtp_server)
    smtp_server.accept()

    dead = db.row(row_id)
    assert (dead.status, dead.attempts) == (OutboxStatus.SENDING, 1)
    assert smtp_server.messages == []

    settings = server_settings(db, tmp_path, smtp_server,
                               timeout_seconds=PROCESS_SMTP_TIMEOUT)
    # Its lease protects it from the others while it could still be alive...
    clock = Clock(dead.next_attempt_at - timedelta(seconds=1))
    assert sender(settings, db, clock).send_due() == SendReport()
    assert db.row(row_id).status is OutboxStatus.SENDING
    # ... and once over, the row goes again: the server never had it.
    clock.now = dead.next_attempt_at
    report = sender(settings, db, clock).send_due()
    assert (report.requeued, report.sent) == ([row_id], [row_id])
    assert report.interrupted == report.failed == []
    clock.advance(days=1)
    assert sender(settings, db, clock).send_due() == SendReport()

    row = db.row(row_id)
    assert (row.status, row.attempts) == (OutboxStatus.SENT, 2)
    [got] = smtp_server.messages
    assert got.raw == row.raw


def test_sender_process_killed_during_data_is_interrupted_and_never_resent(
    db: OutboxDb, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    row_id = queue(db, now=datetime.now(UTC) - timedelta(seconds=1))
    smtp_server.stall("data")
    proc = start_sender_process(db, tmp_path, smtp_server)
    kill_when_stalled(proc, smtp_server)
    killed_at = datetime.now(UTC)
    smtp_server.accept()

    # The server has the content, unanswered: nobody can tell whether it delivers it.
    assert len(smtp_server.messages) == 1
    dead = db.row(row_id)
    assert (dead.status, dead.attempts) == (OutboxStatus.DELIVERING, 1)
    settings = server_settings(db, tmp_path, smtp_server,
                               timeout_seconds=PROCESS_SMTP_TIMEOUT)
    assert dead.next_attempt_at <= killed_at + lease_for(settings.smtp, OutboxStatus.DELIVERING)

    clock = Clock(dead.next_attempt_at - timedelta(seconds=1))
    assert sender(settings, db, clock).send_due() == SendReport()
    assert db.row(row_id).status is OutboxStatus.DELIVERING
    clock.now = dead.next_attempt_at
    assert sender(settings, db, clock).send_due() == SendReport(interrupted=[row_id])
    clock.advance(days=1)
    assert sender(settings, db, clock).send_due() == SendReport()

    row = db.row(row_id)
    assert (row.status, row.last_error) == (OutboxStatus.FAILED, INTERRUPTED)
    assert len(smtp_server.messages) == 1


# --- TLS and login ---------------------------------------------------------------------


def test_starttls_and_login_with_the_password_from_the_environment(
    db: OutboxDb, tmp_path: Path, smtp_starttls_server: SmtpTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = smtp_starttls_server
    monkeypatch.setenv("TEST_SMTP_PASSWORD", server.password)
    settings = server_settings(db, tmp_path, server, username=server.username,
                               password_env="TEST_SMTP_PASSWORD")
    row_id = queue(db)
    assert sender(settings, db, Clock()).send_due().sent == [row_id]
    [got] = server.messages
    assert got.authenticated


def test_implicit_tls_and_login_with_the_password_from_a_file(
    db: OutboxDb, tmp_path: Path, smtp_ssl_server: SmtpTestServer,
) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text(smtp_ssl_server.password + "\n", encoding="utf-8")
    settings = server_settings(db, tmp_path, smtp_ssl_server,
                               username=smtp_ssl_server.username, password_file=secret)
    row_id = queue(db)
    assert sender(settings, db, Clock()).send_due().sent == [row_id]
    [got] = smtp_ssl_server.messages
    assert got.authenticated


def test_wrong_password_is_retried_not_failed(
    db: OutboxDb, tmp_path: Path, smtp_starttls_server: SmtpTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    settings = server_settings(db, tmp_path, smtp_starttls_server,
                               username=smtp_starttls_server.username,
                               password_env="TEST_SMTP_PASSWORD")
    row_id = queue(db)
    assert sender(settings, db, Clock()).send_due().retrying == [row_id]
    assert "535" in (db.row(row_id).last_error or "")


def test_password_smtplib_cannot_send_is_retried_with_the_reason(
    db: OutboxDb, tmp_path: Path, smtp_starttls_server: SmtpTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "パスワード")
    settings = server_settings(db, tmp_path, smtp_starttls_server,
                               username=smtp_starttls_server.username,
                               password_env="TEST_SMTP_PASSWORD")
    row_id = queue(db)
    assert sender(settings, db, Clock()).send_due().retrying == [row_id]
    assert "ASCII" in (db.row(row_id).last_error or "")


def test_starttls_required_but_not_offered_never_falls_back_to_plain(
    db: OutboxDb, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    row_id = queue(db)
    settings = server_settings(db, tmp_path, smtp_server, security="starttls")
    assert sender(settings, db, Clock()).send_due().retrying == [row_id]
    assert smtp_server.messages == []


def test_untrusted_certificate_is_not_accepted(
    db: OutboxDb, tmp_path: Path, smtp_ssl_server: SmtpTestServer
) -> None:
    row_id = queue(db)
    settings = server_settings(db, tmp_path, smtp_ssl_server, ca_file=None)  # system CAs
    assert sender(settings, db, Clock()).send_due().retrying == [row_id]
    assert "CERTIFICATE_VERIFY_FAILED" in (db.row(row_id).last_error or "")


# --- configuration ---------------------------------------------------------------------


def test_smtp_login_without_a_password_source_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"smtp: .*password_env or password_file"):
        load_settings(None, storage_dir=tmp_path, sources=[], smtp={"username": "desk"})


def test_smtp_password_env_that_is_unset_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SMTP_PASSWORD", raising=False)
    smtp = SmtpSettings(username="desk", password_env="NO_SUCH_SMTP_PASSWORD")
    with pytest.raises(ConfigError, match=r"smtp\.password_env: .*NO_SUCH_SMTP_PASSWORD"):
        smtp.password()


# --- several workers (PostgreSQL) ------------------------------------------------------


@pytest.mark.postgres
def test_postgres_worker_skips_a_row_another_worker_holds_instead_of_waiting(
    pg_db: OutboxDb,
) -> None:
    queue(pg_db, "a")
    queue(pg_db, "b", message=mail(n=2))
    lease = timedelta(minutes=10)
    with pg_db.sessions() as one, one.begin():
        held = claim_next(one, now=T0, lease=lease)
        assert held is not None
        with pg_db.sessions() as two, two.begin():
            # Waiting for the held row would raise here instead of hanging.
            two.execute(text("SET LOCAL lock_timeout = '2s'"))
            other = claim_next(two, now=T0, lease=lease)
            assert other is not None
            assert other.id != held.id
            assert claim_next(two, now=T0, lease=lease) is None


@pytest.mark.postgres
def test_postgres_concurrent_senders_deliver_each_row_exactly_once(
    pg_db: OutboxDb, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    ids = [queue(pg_db, f"k{i}", message=mail(n=i)) for i in range(24)]
    settings = server_settings(pg_db, tmp_path, smtp_server)
    reports = []
    workers = [
        threading.Thread(target=lambda: reports.append(
            sender(settings, pg_db, Clock()).send_due()))
        for _ in range(4)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert sorted(i for r in reports for i in r.sent) == ids
    assert len(smtp_server.messages) == len(ids)
    assert len({m.raw for m in smtp_server.messages}) == len(ids)
    assert {r.status for r in pg_db.rows()} == {OutboxStatus.SENT}
