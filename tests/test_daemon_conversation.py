"""The daemon as a real process keeps the conversation's dates: next-response reminder and
escalation, a pending ticket's reminder, auto-close; killed (-9) and started again, it sends
none of them twice (as tests/test_daemon.py proves it for the first response)."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from sqlalchemy import select

from madoguchi.app import Desk
from madoguchi.config import load_settings
from madoguchi.ingest.inbound import Inbound
from madoguchi.ticketing.conversation_models import TicketEvent
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.lookup import ticket_by_number
from madoguchi.ticketing.models import Ticket
from madoguchi.ticketing.vocabulary import ConversationState as State
from madoguchi.ticketing.vocabulary import TicketStatus
from tests.mailfactory import make_mail
from tests.servers.dovecot import DovecotAccount
from tests.smtp_server import SmtpTestServer
from tests.test_daemon import CONTACT, register_customers, start_daemon, wait_for, write_config

# The system lane: whole processes, for minutes (tests/conftest.py).
pytestmark = pytest.mark.slow


def _subjects(smtp: SmtpTestServer) -> list[str]:
    return [str(message_from_bytes(m.raw, policy=default_policy)["Subject"])
            for m in smtp.messages]


def _prepare(desk: Desk) -> dict[str, str]:
    """Four tickets, each with one of the conversation's dates come."""
    now = datetime.now(UTC)
    numbers: dict[str, str] = {}
    for name in ("overdue", "soon", "pending", "solved"):
        raw = make_mail(subject=f"件名 {name}", from_=CONTACT, charset="utf-8",
                        message_id=f"{name}@sakura-shoji.example.jp", date=now)
        numbers[name] = desk.pipeline.ingest(Inbound(raw, "test", name)).ticket_number or ""
    with transaction(desk.factory) as s:
        def get(name: str) -> Ticket:
            found = ticket_by_number(s, numbers[name], follow_merges=False)
            assert found is not None
            found.first_responded_at = now - timedelta(days=3)
            return found

        for name, due in (("overdue", now - timedelta(minutes=1)),
                          ("soon", now + timedelta(minutes=30))):
            t = get(name)
            t.state, t.status = State.CUSTOMER_REPLIED, TicketStatus.OPEN
            t.customer_replied_at, t.next_response_due = now - timedelta(days=3), due
        t = get("pending")
        t.state, t.status, t.pending_until = State.PENDING, TicketStatus.PENDING, now
        t = get("solved")
        t.state, t.status = State.SOLVED, TicketStatus.PENDING
        t.solved_at = now - timedelta(days=30)
    return numbers


def test_the_conversation_dates_are_acted_on_once_across_a_kill(
    tmp_path: Path, dovecot: DovecotAccount, smtp_server: SmtpTestServer,
) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'desk.db'}", dovecot, smtp_server)
    register_customers(config)
    smtp = smtp_server
    desk = Desk.open(load_settings(config))
    numbers = _prepare(desk)
    wanted = {"【エスカレーション】次回回答期限超過": 1, "次回回答期限のお知らせ": 1,
              "保留の再通知": 1}

    def sent() -> dict[str, int]:
        subjects = _subjects(smtp)
        return {w: sum(w in s for s in subjects) for w in wanted}

    log = tmp_path / "d.log"
    proc = start_daemon(config, log)
    try:
        wait_for(lambda: sent() == wanted, what="the three notices")
        proc.kill()  # SIGKILL: no chance to clean up
        proc.wait(timeout=10)
        proc = start_daemon(config, log)
        wait_for(lambda: log.read_text().count("is the scheduler") >= 2,
                 what="the second daemon to lead")
        time.sleep(4)  # several sweeps (sla_sweep_seconds = 1): nothing new may come
        assert sent() == wanted, (_subjects(smtp), log.read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    with desk.factory() as s:
        def state(name: str) -> State:
            found = ticket_by_number(s, numbers[name], follow_merges=False)
            assert found is not None
            return found.state

        assert state("pending") is State.OPEN and state("solved") is State.CLOSED
        escalations = s.scalars(select(TicketEvent).where(TicketEvent.kind == "escalation"))
        assert len(escalations.all()) == 1
    desk.close()
