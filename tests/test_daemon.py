"""The daemon as a real process: poll, acknowledge, kill, restart, no duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from madoguchi.app import Desk
from madoguchi.config import load_settings
from madoguchi.daemon import Daemon
from madoguchi.ticketing.customers_csv import import_rows, read_rows
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import OutboxMessage, Ticket
from tests.mailfactory import make_mail
from tests.servers.dovecot import DovecotAccount
from tests.smtp_server import SmtpTestServer

ROOT = Path(__file__).resolve().parent.parent
CONTACT = ("山田 太郎", "yamada@sakura-shoji.example.jp")


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


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "madoguchi", "--config", str(config), "daemon"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT,
    )


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):  # type: ignore[no-untyped-def]
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
        imap.append(make_mail(from_=CONTACT, message_id="e1@sakura-shoji.example.jp",
                              date=datetime.now(UTC)), internaldate=datetime.now(UTC))
        wait_for(lambda: any(j.startswith("escalate:") for j in scheduled()),
                 what="the escalation job in the job store")
        proc.kill()
        proc.wait(timeout=10)
        assert any(j.startswith("escalate:") for j in scheduled())  # it survived the kill
        proc = start_daemon(config, log)
        boss = lambda: [m for m in smtp.messages if m.rcpt_tos == ("boss@example.co.jp",)]  # noqa: E731
        wait_for(boss, timeout=30, what="the escalation mail")
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
