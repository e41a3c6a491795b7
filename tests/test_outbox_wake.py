"""The outbox's wake-up in a leading daemon: mail queued by anyone is sent without waiting for
the scheduled round; rows it could not send are not tried again at every look."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from madoguchi.app import Desk
from madoguchi.config import load_settings
from madoguchi.daemon import Daemon
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import OutboxMessage
from madoguchi.ticketing.outbox import enqueue
from tests.test_daemon import wait_for

if TYPE_CHECKING:
    from tests.smtp_server import SmtpTestServer

CUSTOMER = "yamada@sakura.example.jp"


def _desk(database_url: str, tmp_path: Path, **smtp: object) -> Desk:
    return Desk.open(load_settings(None, database_url=database_url,
                                   storage_dir=tmp_path / "storage", sources=[],
                                   smtp={"backoff_base_seconds": 600, **smtp}))


@pytest.fixture
def leading() -> Iterator[list[Daemon]]:
    """Daemons whose wake-up runs as the leader's would (no scheduler: no scheduled round)."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.wake.stop()
        daemon.desk.close()


def _lead(daemon: Daemon, started: list[Daemon]) -> Daemon:
    daemon.epoch = 1  # no lease (as ``--once``): the jobs run unfenced
    started.append(daemon)
    daemon.wake.tend()
    return daemon


def _queue(desk: Desk, key: str) -> int:
    """Queue one mail, as the web desk or another process would: no word to the daemon."""
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = "support@example.co.jp"
    msg["To"] = CUSTOMER
    msg["Subject"] = "受付のお知らせ"
    msg["Message-ID"] = f"<wake.{uuid.uuid4().hex[:8]}@example.co.jp>"
    msg.set_content("本文\n", charset="utf-8", cte="base64")
    with transaction(desk.factory) as session:
        row = enqueue(session, kind="ack", dedupe_key=key, ticket=None, message=msg,
                      now=datetime.now(UTC))
        assert row is not None
        return row.id


def _attempts(desk: Desk) -> dict[int, int]:
    with desk.factory() as session:
        return {r.id: r.attempts for r in session.scalars(select(OutboxMessage))}


def test_mail_queued_behind_the_daemons_back_is_sent_by_its_wake_up(
    database_url: str, tmp_path: Path, smtp_server: SmtpTestServer, leading: list[Daemon],
) -> None:
    daemon = _lead(Daemon(_desk(database_url, tmp_path, **smtp_server.smtp_settings()),
                          pollers={}), leading)
    other = _desk(database_url, tmp_path / "other", **smtp_server.smtp_settings())
    try:
        for n in range(3):
            _queue(other, f"ack:wake-{n}")
            wait_for(lambda n=n: len(smtp_server.messages) == n + 1, timeout=20,
                     what=f"mail {n} sent")
    finally:
        other.close()
    assert [list(m.rcpt_tos) for m in smtp_server.messages] == [[CUSTOMER]] * 3
    # No scheduler here: the wake-up's rounds sent them all, each once. How many rounds is
    # not fixed: a mail queued while a round finishes rides it, and a notification and a
    # look can each start one (CI saw two, then four).
    assert daemon.wake.rounds >= 1


def test_rows_the_server_refused_wait_for_the_round_while_new_mail_still_wakes_it(
    database_url: str, tmp_path: Path, smtp_closed_port: int, leading: list[Daemon],
) -> None:
    desk = _desk(database_url, tmp_path, host="127.0.0.1", port=smtp_closed_port,
                 security="plain", timeout_seconds=5)
    first, second = _queue(desk, "ack:a"), _queue(desk, "ack:b")
    daemon = _lead(Daemon(desk, pollers={}), leading)
    # The round tries the first, is refused (a retry in ten minutes) and ends: the
    # second is left due, for the scheduled round, not for every look.
    wait_for(lambda: _attempts(desk) == {first: 1, second: 0}, timeout=20,
             what="the first refused")
    rounds = daemon.wake.rounds
    time.sleep(3)  # six looks on SQLite, one or two on PostgreSQL
    assert daemon.wake.rounds == rounds
    assert _attempts(desk) == {first: 1, second: 0}
    third = _queue(desk, "ack:c")  # news: a round, which tries the most overdue first
    wait_for(lambda: _attempts(desk)[second] == 1, timeout=20, what="a round for new mail")
    assert daemon.wake.rounds > rounds
    assert _attempts(desk)[first] == 1 and third in _attempts(desk)
