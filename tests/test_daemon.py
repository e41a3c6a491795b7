"""The daemon as a real process: poll, acknowledge, kill, restart, no duplicates."""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from madoguchi.app import Desk
from madoguchi.config import DaemonSettings, load_settings
from madoguchi.daemon import Daemon
from madoguchi.ingest.sources.backoff import SourceBackoff
from madoguchi.ticketing.customers_csv import import_rows, read_rows
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import OutboxMessage, SourceFailure, Ticket
from tests.mailfactory import make_mail
from tests.postgres import PostgresDatabases
from tests.servers.dovecot import DovecotAccount
from tests.smtp_server import SmtpTestServer

# The system lane: whole processes, for minutes (tests/conftest.py).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CONTACT = ("山田 太郎", "yamada@sakura-shoji.example.jp")


# -- the poll job and its backoff, in this process ---------------------------------


class Clock:
    """The backoff's idea of now, moved by the test: nobody sleeps."""

    def __init__(self, start: datetime = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def source_backoff(desk: Desk, clock: Clock, *, base: float = 1.0, cap: float = 60.0,
                   seed: int = 7) -> SourceBackoff:
    settings = DaemonSettings(source_backoff_base_seconds=base, source_backoff_max_seconds=cap)
    return SourceBackoff(settings, desk.factory, now=clock, rng=random.Random(seed))


def run_poll_job(daemon: Daemon, name: str, clock: Clock,
                 on_failure: Callable[[int], None] = lambda _failures: None,
                 *, give_up_after: int = 6) -> list[float]:
    """Run source ``name``'s poll job as the scheduler does, until a poll goes through.

    After a failed poll the job runs again at the next attempt its backoff
    set (the clock is moved there); ``on_failure(n)`` is called after the
    n-th failure in a row. Returns the seconds waited after each failure.
    """
    delays: list[float] = []
    while True:
        try:
            daemon.poll(name)
        except Exception:
            failing = daemon.backoff.failing(name)
            assert failing is not None and failing.failures == len(delays) + 1
            delays.append((failing.next_attempt_at - clock()).total_seconds())
            if len(delays) > give_up_after:
                raise
            on_failure(len(delays))
            clock.now = failing.next_attempt_at
        else:
            assert daemon.backoff.failing(name) is None  # back to its interval
            return delays


def failures_written_down(desk: Desk) -> dict[str, SourceFailure]:
    with desk.factory() as session:
        return {f.source: f for f in session.scalars(select(SourceFailure))}


def write_config(tmp_path: Path, db_url: str, imap: DovecotAccount, smtp: SmtpTestServer,
                 **daemon: object) -> Path:
    daemon_lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in daemon.items())
    config = tmp_path / "madoguchi.toml"
    config.write_text(f"""
database_url = "{db_url}"
storage_dir = "{tmp_path / 'storage'}"
desk_address = "support@example.co.jp"

[smtp]
host = "{smtp.host}"
port = {smtp.port}
security = "plain"
timeout_seconds = 5

[daemon]
outbox_interval_seconds = 0.5
sla_sweep_seconds = 1
leader_retry_seconds = 0.3
team_address = "team@example.co.jp"
supervisor_address = "boss@example.co.jp"
{daemon_lines}

[[sources]]
name = "mailbox"
kind = "imap"
host = "{imap.host}"
port = {imap.port}
security = "plain"
username = "{imap.username}"
password_file = "{imap.password_file}"
after_commit = "move"
interval_seconds = 0.5
""", encoding="utf-8")
    return config


def register_customers(config: Path) -> None:
    settings = load_settings(config)
    desk = Desk.open(settings)
    from madoguchi.ticketing.db import upgrade

    upgrade(settings.database_url)
    with transaction(desk.factory) as session:
        rows = read_rows((ROOT / "demo" / "customers.csv").read_text(encoding="utf-8"),
                         settings.support_number)
        import_rows(session, rows)
    desk.close()


def start_daemon(config: Path, log: Path, env: dict[str, str] | None = None
                 ) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "madoguchi", "--config", str(config), "daemon"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT,
        env={**os.environ, **env} if env else None,
    )


def wait_for(predicate, timeout: float = 90.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def setup(tmp_path: Path, dovecot: DovecotAccount, smtp_server: SmtpTestServer
          ) -> Iterator[tuple[Path, DovecotAccount, SmtpTestServer]]:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'desk.db'}", dovecot, smtp_server)
    register_customers(config)
    yield config, dovecot, smtp_server


def acks(smtp: SmtpTestServer) -> list[str]:
    return [m.rcpt_tos[0] for m in smtp.messages if b"Auto-Submitted: auto-replied" in m.raw]


def test_daemon_ingests_acknowledges_survives_kill_and_sends_nothing_twice(
    setup: tuple[Path, DovecotAccount, SmtpTestServer], tmp_path: Path
) -> None:
    config, imap, smtp = setup
    log = tmp_path / "daemon.log"
    imap.append(make_mail(from_=CONTACT, message_id="d1@sakura-shoji.example.jp"))
    proc = start_daemon(config, log)
    try:
        wait_for(lambda: len(acks(smtp)) == 1, what="the first acknowledgement")
        proc.kill()  # SIGKILL: no chance to clean up
        proc.wait(timeout=10)

        imap.append(make_mail(subject="二件目", from_=CONTACT,
                              message_id="d2@sakura-shoji.example.jp"))
        proc = start_daemon(config, log)
        wait_for(lambda: len(acks(smtp)) == 2, what="the second acknowledgement")
        time.sleep(2)  # let it poll and deliver a few more rounds: nothing new may come
        assert acks(smtp) == [CONTACT[1], CONTACT[1]], log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    settings = load_settings(config)
    desk = Desk.open(settings)
    with desk.factory() as s:
        assert len(s.scalars(select(Ticket)).all()) == 2
    desk.close()
    assert imap.messages("INBOX") == {}


def test_a_second_daemon_stands_by_and_takes_over_when_the_first_dies(
    setup: tuple[Path, DovecotAccount, SmtpTestServer], tmp_path: Path
) -> None:
    config, imap, smtp = setup
    first = start_daemon(config, tmp_path / "first.log")
    second = None
    try:
        wait_for(lambda: "is the scheduler" in (tmp_path / "first.log").read_text(),
                 what="the first daemon to lead")
        second = start_daemon(config, tmp_path / "second.log")
        wait_for(lambda: "standing by" in (tmp_path / "second.log").read_text(),
                 what="the second daemon to stand by")
        first.kill()
        first.wait(timeout=10)
        wait_for(lambda: "is the scheduler" in (tmp_path / "second.log").read_text(),
                 what="the second daemon to take over")
        imap.append(make_mail(from_=CONTACT, message_id="t1@sakura-shoji.example.jp"))
        wait_for(lambda: len(acks(smtp)) == 1, what="the standby's acknowledgement")
        second.send_signal(signal.SIGINT)
        assert second.wait(timeout=20) == 0
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()


def test_once_escalates_overdue_and_reminds_due_soon_tickets(
    setup: tuple[Path, DovecotAccount, SmtpTestServer],
) -> None:
    config, imap, smtp = setup
    now = datetime.now(UTC)
    # One inquiry long overdue, one whose reminder time has come.
    imap.append(make_mail(from_=CONTACT, message_id="o1@x", date=now - timedelta(days=30)),
                internaldate=now - timedelta(days=30))
    desk = Desk.open(load_settings(config))
    try:
        report = Daemon(desk).run_once()
        assert report.escalations == 1
        with desk.factory() as s:
            ticket = s.scalars(select(Ticket)).one()
            assert ticket.escalated_at is not None
            kinds = sorted(o.kind for o in s.scalars(select(OutboxMessage)))
        assert kinds == ["ack", "escalation"]
        rcpts = sorted(m.rcpt_tos[0] for m in smtp.messages)
        assert rcpts == ["boss@example.co.jp", CONTACT[1]]
        # A second pass does nothing more.
        again = Daemon(desk).run_once()
        assert (again.escalations, again.sent) == (0, 0)
    finally:
        desk.close()


def test_answered_ticket_is_neither_reminded_nor_escalated(
    setup: tuple[Path, DovecotAccount, SmtpTestServer],
) -> None:
    config, imap, smtp = setup
    now = datetime.now(UTC)
    imap.append(make_mail(from_=CONTACT, message_id="a1@x", date=now - timedelta(days=30)),
                internaldate=now - timedelta(days=30))
    desk = Desk.open(load_settings(config))
    try:
        daemon = Daemon(desk)
        for name in daemon.pollers:
            daemon.poll(name)
        with transaction(desk.factory) as s:
            s.scalars(select(Ticket)).one().first_responded_at = now
        report = daemon.run_once()
        assert (report.reminders, report.escalations) == (0, 0)
    finally:
        desk.close()
    assert all(m.rcpt_tos[0] == CONTACT[1] for m in smtp.messages)


def test_sigterm_with_nothing_to_do_exits_zero(
    setup: tuple[Path, DovecotAccount, SmtpTestServer], tmp_path: Path
) -> None:
    config, _, _ = setup
    proc = start_daemon(config, tmp_path / "d.log")
    wait_for(lambda: "is the scheduler" in (tmp_path / "d.log").read_text(), what="start")
    os.kill(proc.pid, signal.SIGTERM)
    try:
        code = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGABRT)
        proc.wait()
        raise AssertionError((tmp_path / "d.log").read_text()) from None
    assert code == 0


def test_escalation_job_survives_a_restart_and_fires_at_the_due_time(
    setup: tuple[Path, DovecotAccount, SmtpTestServer], tmp_path: Path
) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from madoguchi.ticketing.models import Contract

    config, imap, smtp = setup
    settings = load_settings(config)
    desk = Desk.open(settings)
    with transaction(desk.factory) as s:
        contract = s.scalars(
            select(Contract).where(Contract.support_number == "203100010008")
        ).one()
        # A contract with very short, round-the-clock terms: due ~10 s after receipt.
        contract.sla_override = {"calendar": "24x7", "policy": "business_hours", "hours": 0.003}

    def scheduled() -> list[str]:
        try:
            with desk.engine.connect() as conn:
                return [r[0] for r in conn.execute(text("SELECT id FROM apscheduler_jobs"))]
        except OperationalError:  # the daemon has not created its job store yet
            return []

    log = tmp_path / "d.log"
    proc = start_daemon(config, log)
    try:
        # The mail only once the daemon leads (its recurring jobs are in the store): its
        # ten seconds start at receipt, and a start-up slowed by a loaded machine must not
        # spend them before the job is there to be seen (seen here: 10 s to lead).
        wait_for(lambda: len(scheduled()) >= 3, what="the daemon's jobs in the job store")
        imap.append(make_mail(from_=CONTACT, message_id="e1@sakura-shoji.example.jp",
                              date=datetime.now(UTC)), internaldate=datetime.now(UTC))
        wait_for(lambda: any(j.startswith("escalate:") for j in scheduled()),
                 what="the escalation job in the job store")
        proc.kill()
        proc.wait(timeout=10)
        assert any(j.startswith("escalate:") for j in scheduled())  # it survived the kill
        proc = start_daemon(config, log)
        boss = lambda: [m for m in smtp.messages if m.rcpt_tos == ("boss@example.co.jp",)]  # noqa: E731
        wait_for(boss, what="the escalation mail")
        time.sleep(1.5)
        assert len(boss()) == 1, log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with desk.factory() as s:
        assert s.scalars(select(Ticket)).one().escalated_at is not None
    desk.close()


def test_reminder_goes_to_the_assignee_when_there_is_one(
    setup: tuple[Path, DovecotAccount, SmtpTestServer],
) -> None:
    from madoguchi.ticketing.escalation import remind
    from madoguchi.ticketing.models import Role, StaffUser

    config, imap, _ = setup
    imap.append(make_mail(from_=CONTACT, message_id="r1@x"))
    desk = Desk.open(load_settings(config))
    try:
        daemon = Daemon(desk)
        for name in daemon.pollers:
            daemon.poll(name)
        with transaction(desk.factory) as s:
            ticket = s.scalars(select(Ticket)).one()
            ticket.assignee = StaffUser(login="sato", name="佐藤", email="sato@example.co.jp",
                                        password_hash="x", role=Role.AGENT)
            s.flush()
            assert remind(s, ticket, desk.settings, datetime.now(UTC))
            rcpts = [o.rcpt_to for o in s.scalars(select(OutboxMessage)) if o.kind == "reminder"]
        assert rcpts == [["sato@example.co.jp"]]
    finally:
        desk.close()


def test_remind_and_escalate_do_nothing_for_a_ticket_that_is_gone(desk: Desk) -> None:
    daemon = Daemon(desk)
    assert daemon.remind("T-2026-999999") is False
    assert daemon.escalate("T-2026-999999") is False


# -- backoff in the running daemon -----------------------------------------------------


def written_failure(desk: Desk) -> SourceFailure | None:
    return failures_written_down(desk).get("mailbox")


def poll_job_next_run(desk: Desk) -> float | None:
    from sqlalchemy import text

    with desk.engine.connect() as conn:
        return conn.execute(
            text("SELECT next_run_time FROM apscheduler_jobs WHERE id = 'poll:mailbox'")
        ).scalar()


def least_wait(failures: int, base: float, cap: float) -> float:
    """The shortest the backoff can wait, in all, between the first and the n-th failure."""
    return sum(min(cap, base * 2 ** (k - 1)) / 2 for k in range(1, failures))


def test_the_leaders_poll_job_backs_off_while_the_server_is_down_and_status_shows_it(
    tmp_path: Path, dovecot: DovecotAccount, smtp_server: SmtpTestServer
) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'desk.db'}", dovecot, smtp_server,
                          source_backoff_base_seconds=2, source_backoff_max_seconds=30)
    register_customers(config)
    log = tmp_path / "d.log"
    desk = Desk.open(load_settings(config))
    dovecot.server.stop()
    proc = start_daemon(config, log)
    try:
        row = wait_for(lambda: (f := written_failure(desk)) and f.failures >= 2 and f,
                       timeout=30, what="two failed polls written down")
        # Polled every 0.5 s when well; after failing, it waited its backoff.
        assert (row.last_failed_at - row.failing_since).total_seconds() \
            >= least_wait(row.failures, 2, 30)
        ceiling = min(30, 2 * 2 ** (row.failures - 1))
        assert ceiling / 2 <= (row.next_attempt_at - row.last_failed_at).total_seconds() <= ceiling
        # The job in the job store (the leader's) waits for the next try.
        wait_for(lambda: (f := written_failure(desk)) is not None
                 and abs((poll_job_next_run(desk) or 0) - f.next_attempt_at.timestamp()) < 1e-3,
                 what="the poll job moved to the next try")
        shown = subprocess.run(
            [sys.executable, "-m", "madoguchi", "--config", str(config), "status"],
            capture_output=True, text=True, cwd=ROOT, check=True,
        ).stdout
        assert re.search(r"BACKING OFF: \d+ failures since .*: ImapUnavailable: connect to ",
                         shown), shown

        dovecot.server.start()
        dovecot.append(make_mail(from_=CONTACT, message_id="b1@sakura-shoji.example.jp"))
        wait_for(lambda: len(acks(smtp_server)) == 1, timeout=60, what="the acknowledgement")
        wait_for(lambda: written_failure(desk) is None, what="the failures cleared")
        shown = subprocess.run(
            [sys.executable, "-m", "madoguchi", "--config", str(config), "status"],
            capture_output=True, text=True, cwd=ROOT, check=True,
        ).stdout
        assert "BACKING OFF" not in shown
        assert "polled again after failing; back to its interval" in log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        if not dovecot.server.running:
            dovecot.server.start()
        desk.close()


FAILED_POLL = re.compile(r"^(\S+ \S+) WARNING madoguchi\.ingest\.backoff: mailbox: poll failed "
                         r"\((\d+) in a row\); next try in ([\d.]+) s", re.MULTILINE)


def failed_polls(log: Path) -> list[tuple[datetime, int, float]]:
    """(when, failures in a row, seconds to the next try) of each failed poll a daemon logged."""
    return [(datetime.strptime(at, "%Y-%m-%d %H:%M:%S,%f"), int(n), float(wait))
            for at, n, wait in FAILED_POLL.findall(log.read_text())]


@pytest.mark.postgres
def test_a_standby_backs_off_from_a_shared_mailbox_that_is_down(
    tmp_path: Path, dovecot: DovecotAccount, smtp_server: SmtpTestServer,
    postgres_databases: PostgresDatabases,
) -> None:
    config = write_config(tmp_path, postgres_databases.new(), dovecot, smtp_server,
                          source_backoff_base_seconds=1, source_backoff_max_seconds=8)
    register_customers(config)
    logs = [tmp_path / "leader.log", tmp_path / "standby.log"]
    desk = Desk.open(load_settings(config))
    dovecot.server.stop()
    procs = [start_daemon(config, logs[0])]
    try:
        wait_for(lambda: "is the scheduler" in logs[0].read_text(), what="the leader")
        procs.append(start_daemon(config, logs[1]))
        wait_for(lambda: "standing by" in logs[1].read_text(), what="the standby")
        wait_for(lambda: len(failed_polls(logs[1])) >= 3, timeout=90,
                 what="three failed polls by the standby")
        # Each daemon backs off on its own count: the standby's polls (every
        # 0.5 s when well) waited at least the backoff each time.
        failed = failed_polls(logs[1])
        for (at, n, wait), (next_at, next_n, _) in itertools.pairwise(failed[:3]):
            assert next_n == n + 1
            ceiling = min(8, 2 ** (n - 1))
            assert ceiling / 2 - 0.05 <= wait <= ceiling + 0.05
            assert (next_at - at).total_seconds() >= wait - 0.06, failed
        # The row counts the source's failed polls by both daemons.
        row = written_failure(desk)
        assert row is not None and row.failures >= 3

        dovecot.server.start()
        dovecot.append(make_mail(from_=CONTACT, message_id="s1@sakura-shoji.example.jp"))
        wait_for(lambda: len(acks(smtp_server)) == 1, timeout=60, what="the acknowledgement")
        wait_for(lambda: written_failure(desk) is None, what="the failures cleared")
        for proc, log in zip(procs, logs, strict=True):
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        if not dovecot.server.running:
            dovecot.server.start()
        desk.close()
