"""The daemon with IDLE: mail becomes a ticket and an acknowledgement long before the next poll."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from tests.mailfactory import make_mail
from tests.postgres import PostgresDatabases
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


def test_a_standby_takes_announced_mail_and_the_leader_sends_its_acknowledgements_at_once(
    tmp_path: Path, dovecot: DovecotAccount, smtp_server: SmtpTestServer,
    postgres_databases: PostgresDatabases,
) -> None:
    config = write_config(tmp_path, postgres_databases.new(), dovecot, smtp_server)
    # Both the fallback poll and the leader's scheduled outbox round an hour away:
    # only IDLE brings the mail in, only word of queued mail sends it in time.
    text = config.read_text(encoding="utf-8")
    text = text.replace("outbox_interval_seconds = 0.5", "outbox_interval_seconds = 3600")
    text = text.replace("\ninterval_seconds = 0.5", "\ninterval_seconds = 3600\nidle = true")
    # One sender for every mail: past the default three an hour it would get none.
    text += "\n[acknowledgement]\nmax_per_sender_per_hour = 1000\n"
    config.write_text(text, encoding="utf-8")
    register_customers(config)
    logs = [tmp_path / f"daemon-{n}.log" for n in range(2)]
    procs = []
    try:
        for log in logs:  # the first leads: it is ready first
            procs.append(start_daemon(config, log))
            wait_for(lambda log=log: log.exists() and "waiting for new mail with IDLE"
                     in log.read_text(), timeout=60, what="IDLE")
        leader, standby = logs
        wait_for(lambda: "this daemon is the scheduler" in leader.read_text(), timeout=30,
                 what="the first daemon leading")
        assert "this daemon is the scheduler" not in standby.read_text()
        time.sleep(1)  # past the first polls and the first outbox round at start-up
        sent = 0
        # Both daemons poll at each announcement: mail until the standby took some.
        while _taken(standby) == 0 and sent < 15:
            for _ in range(3):
                dovecot.append(make_mail(subject=f"ライセンスの件 {sent}", from_=CONTACT,
                                         message_id=f"standby-{sent}@sakura-shoji.example.jp"))
                sent += 1
            try:
                wait_for(lambda n=sent: _taken(leader) + _taken(standby) == n, timeout=20,
                         what="the mail taken")
                wait_for(lambda n=sent: len(acks(smtp_server)) == n, timeout=10,
                         what=f"{sent} acknowledgements")
            except AssertionError as exc:
                raise AssertionError("\n".join(
                    line for log in logs for line in log.read_text().splitlines()
                    if "apscheduler" not in line)) from exc
        assert _taken(standby) > 0, "the standby never took any of the mail"
        time.sleep(2)
        assert acks(smtp_server) == [CONTACT[1]] * sent  # each once
        assert "send_outbox: run as the leader" not in standby.read_text()
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
