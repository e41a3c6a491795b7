"""Mail queued outside the daemon (another process's Desk: an ingest, the web desk's reply) is
sent by the leader at once, not at its next scheduled outbox round."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from madoguchi.app import Desk
from madoguchi.config import load_settings
from madoguchi.ingest.inbound import Inbound, OutcomeKind
from madoguchi.ticketing.heartbeats import read_beats
from madoguchi.ticketing.models import OutboxMessage
from tests import test_daemon as kit  # the daemon as a process: config, start, waits
from tests.mailfactory import make_mail
from tests.servers.dovecot import DovecotAccount
from tests.smtp_server import SmtpTestServer

pytestmark = pytest.mark.slow

# Far beyond the wait below: the scheduled round cannot be what sends.
HOUR = 3600
WITHIN = 60.0


def _round_done(desk: Desk) -> bool:
    """Whether the leader's outbox has finished a round (its beat says how it went)."""
    with desk.factory() as session:
        return any(b.component == "outbox" and b.state == "ok" for b in read_beats(session))


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql",
                                                            marks=pytest.mark.postgres)])
def test_an_acknowledgement_queued_by_another_process_is_sent_long_before_the_next_round(
    tmp_path: Path, dovecot: DovecotAccount, smtp_server: SmtpTestServer,
    request: pytest.FixtureRequest, backend: str,
) -> None:
    url = (request.getfixturevalue("postgres_databases").new() if backend == "postgresql"
           else f"sqlite:///{tmp_path / 'desk.db'}")
    assert isinstance(url, str)
    config = kit.write_config(tmp_path, url, dovecot, smtp_server)
    # The outbox's round, the SLA sweep and the mailbox's poll an hour away: nothing of
    # the daemon's own schedule runs while the test waits.
    text = config.read_text(encoding="utf-8")
    for setting in ("outbox_interval_seconds = 0.5", "sla_sweep_seconds = 1",
                    "\ninterval_seconds = 0.5"):
        assert setting in text
        text = text.replace(setting, f"{setting.split('=')[0]}= {HOUR}")
    config.write_text(text, encoding="utf-8")
    kit.register_customers(config)
    desk = Desk.open(load_settings(config))
    log = tmp_path / "daemon.log"
    proc = kit.start_daemon(config, log)
    try:
        # Past the scheduled round of its start-up (the next one is an hour away).
        kit.wait_for(lambda: _round_done(desk), timeout=60, what="the leader's first outbox round")
        time.sleep(1)
        assert kit.acks(smtp_server) == []
        raw = make_mail(subject="ライセンスの件", from_=kit.CONTACT,
                        message_id="queued-outside@sakura-shoji.example.jp",
                        date=datetime.now(UTC))
        outcome = desk.pipeline.ingest(Inbound(raw, "test", "queued-outside"))
        assert outcome.kind is OutcomeKind.CREATED
        with desk.factory() as session:  # queued by this process, not the daemon
            assert len(session.scalars(select(OutboxMessage)).all()) == 1
        queued = time.monotonic()
        try:
            kit.wait_for(lambda: kit.acks(smtp_server), timeout=WITHIN, what="the acknowledgement")
        except AssertionError as exc:
            raise AssertionError(log.read_text()) from exc
        assert time.monotonic() - queued < WITHIN
        time.sleep(1)
        assert kit.acks(smtp_server) == [kit.CONTACT[1]]  # once
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        desk.close()
