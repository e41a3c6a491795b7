"""The daemon with IDLE: mail becomes a ticket and an acknowledgement long before the next poll."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from tests.mailfactory import make_mail
from tests.servers.dovecot import DovecotAccount
from tests.smtp_server import SmtpTestServer
from tests.test_daemon import (
    CONTACT,
    acks,
    register_customers,
    start_daemon,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow


# One daemon on SQLite, two on PostgreSQL (which share the mailbox).
@pytest.mark.parametrize("daemons", [pytest.param(1, id="sqlite"),
                                     pytest.param(2, id="postgresql")])
def test_new_mail_is_taken_when_the_server_announces_it_not_at_the_next_poll(
    tmp_path: Path, dovecot: DovecotAccount, smtp_server: SmtpTestServer,
    request: pytest.FixtureRequest, daemons: int,
) -> None:
    url = (request.getfixturevalue("postgres_databases").new() if daemons == 2
           else f"sqlite:///{tmp_path / 'desk.db'}")
    assert isinstance(url, str)
    config = write_config(tmp_path, url, dovecot, smtp_server)
    # The fallback poll an hour away: only IDLE can bring the mail in time.
    config.write_text(config.read_text(encoding="utf-8").replace(
        "\ninterval_seconds = 0.5", "\ninterval_seconds = 3600\nidle = true"), encoding="utf-8")
    register_customers(config)
    logs = [tmp_path / f"daemon-{n}.log" for n in range(daemons)]
    procs = [start_daemon(config, log) for log in logs]
    try:
        for log in logs:
            wait_for(lambda log=log: log.exists() and "waiting for new mail with IDLE"
                     in log.read_text(), timeout=60, what="IDLE")
        time.sleep(1)  # past the first poll at start-up
        for n in range(3):
            dovecot.append(make_mail(subject=f"ライセンスの件 {n}", from_=CONTACT,
                                     message_id=f"idle-daemon-{n}@sakura-shoji.example.jp"))
        try:
            wait_for(lambda: len(acks(smtp_server)) == 3, timeout=20,
                     what="three acknowledgements")
        except AssertionError as exc:
            raise AssertionError("\n".join(
                line for log in logs for line in log.read_text().splitlines()
                if "apscheduler" not in line)) from exc
        time.sleep(2)
        assert acks(smtp_server) == [CONTACT[1]] * 3  # each once
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, log in zip(procs, logs, strict=True):
            assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    assert dovecot.messages("INBOX") == {}



# What was seen once as "the leader's outbox stopped": on PostgreSQL every
# daemon polls the shared mailbox, and with IDLE both polled at once; the
# standby's claims took the mail, the leader's own announced poll found
# none and its outbox round ran before the standby had committed, and only
# the leader sends. The acknowledgements then waited for the leader's next
# scheduled round: an hour in that test (its replace() also moved
# outbox_interval_seconds), 30 s by default. Now the standby's commit tells
# the leader (NOTIFY madoguchi_outbox) and it sends at once.
_POLLED = re.compile(r"INFO madoguchi\.daemon: mailbox: PollReport\(fetched=(\d+)")


def _taken(log: Path) -> int:
    return sum(int(n) for n in _POLLED.findall(log.read_text()))
