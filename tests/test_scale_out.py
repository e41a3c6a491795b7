"""Several daemons on one PostgreSQL database and one mailbox, as real processes."""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from madoguchi.app import Desk
from madoguchi.config import load_settings
from madoguchi.ticketing.acknowledgement import ACK_KIND
from madoguchi.ticketing.models import IngestClaim, Message, OutboxMessage, Ticket
from tests.mailfactory import make_mail
from tests.postgres import PostgresDatabases
from tests.servers.dovecot import DovecotAccount
from tests.smtp_server import SmtpTestServer
from tests.test_daemon import acks, register_customers, start_daemon, wait_for, write_config

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

# Registered contacts of contracts in force: each new ticket of theirs is
# acknowledged (one under an expired contract would be out of scope, and get none).
SENDERS = [
    ("山田 太郎", "yamada@sakura-shoji.example.jp"),
    ("佐藤 一郎", "sato@minato-ss.example.jp"),
    ("髙橋 花子", "takahashi@sakura-shoji.example.jp"),
]
MESSAGES = 90
WORKERS = 3


def test_three_daemons_share_one_mailbox_and_nothing_is_stored_or_sent_twice(
    tmp_path: Path, dovecot: DovecotAccount, smtp_server: SmtpTestServer,
    postgres_databases: PostgresDatabases,
) -> None:
    config = write_config(tmp_path, postgres_databases.new(), dovecot, smtp_server)
    # Small batches, so that there are claims enough to share; every
    # sender may be acknowledged as often as the test writes to them.
    config.write_text(config.read_text(encoding="utf-8") + """
[limits]
imap_batch_size = 5

[acknowledgement]
max_per_sender_per_hour = 1000
""", encoding="utf-8")
    register_customers(config)
    logs = [tmp_path / f"daemon-{n}.log" for n in range(WORKERS)]
    procs = [start_daemon(config, log) for log in logs]
    try:
        # The mail arrives once every daemon polls, so that on a loaded machine
        # the first one up does not take it all before the others start.
        wait_for(lambda: all(log.exists() and "polling mailbox alongside any other daemon"
                             in log.read_text() for log in logs),
                 timeout=120, what="every daemon polling")
        # Every third mail from the 10th on replies to the mail just before it, which
        # is often in the claim before, stored by another daemon at the same time.
        replies = {i: i - 1 for i in range(10, MESSAGES, 3)}
        for i in range(MESSAGES):
            parent = f"scale-{replies[i]}@example.jp" if i in replies else None
            dovecot.append(make_mail(
                subject=f"ライセンスの追加について（{replies.get(i, i)}）",
                body="ユーザーを追加したいので、ライセンスキーの発行をお願いします。\n" * 20,
                from_=SENDERS[i % len(SENDERS)], message_id=f"scale-{i}@example.jp",
                in_reply_to=parent, references=[parent] if parent else [],
            ))
        originals = [i for i in range(MESSAGES) if i not in replies]
        wait_for(lambda: len(acks(smtp_server)) >= len(originals), timeout=120,
                 what="an acknowledgement per new ticket")
        time.sleep(3)  # more polls and outbox rounds: nothing more may come
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, log in zip(procs, logs, strict=True):
            assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    texts = [log.read_text() for log in logs]
    assert all("polling mailbox alongside any other daemon" in t for t in texts)
    # Each stored message is logged by the daemon that stored it.
    stored_by = [len(re.findall(r"uid=\d+: (?:created|threaded) T-", t)) for t in texts]
    assert sum(stored_by) == MESSAGES, stored_by
    assert sum(1 for n in stored_by if n) >= 2, f"one daemon did all the work: {stored_by}"

    # One acknowledgement per new ticket; a reply is never taken for a new one.
    assert Counter(acks(smtp_server)) == Counter(SENDERS[i % len(SENDERS)][1] for i in originals)
    desk = Desk.open(load_settings(config))
    try:
        with desk.factory() as session:
            assert session.scalar(select(func.count()).select_from(Ticket)) == len(originals)
            ticket_of = dict(session.execute(select(Message.message_id, Message.ticket_id)).all())
            assert sorted(ticket_of) == sorted(f"scale-{i}@example.jp" for i in range(MESSAGES))
            assert session.scalar(select(func.count()).select_from(Message)) == MESSAGES
            for reply, parent in replies.items():
                assert ticket_of[f"scale-{reply}@example.jp"] == \
                    ticket_of[f"scale-{parent}@example.jp"], f"reply {reply} not threaded"
            assert session.scalar(select(func.count()).select_from(IngestClaim)) == 0
            # One acknowledgement queued per ticket. Reminders and escalations
            # may be queued too, depending on the time of day the test runs
            # (between 16:30 and 17:00 JST a new ticket is due within the
            # reminder lead); each of those at most once per ticket as well.
            queued = Counter(session.execute(
                select(OutboxMessage.kind, OutboxMessage.ticket_id)).all())
            assert Counter(kind for kind, _ in queued if kind == ACK_KIND) \
                == {ACK_KIND: len(originals)}
            assert set(queued.values()) == {1}, queued
            assert {kind for kind, _ in queued} <= {ACK_KIND, "reminder", "escalation"}
    finally:
        desk.close()
    assert dovecot.messages("INBOX") == {}
