"""IMAP IDLE against a real Dovecot: new mail announced at once, IDLE re-issued, reconnects."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from madoguchi.config import ImapSource
from madoguchi.ingest.sources.idle import IdleWatcher, announces_mail
from madoguchi.ingest.sources.mailbox import Mailbox
from tests.mailfactory import make_mail
from tests.servers.dovecot import DovecotAccount

pytestmark = pytest.mark.integration


def source(account: DovecotAccount, **extra: object) -> ImapSource:
    return ImapSource.model_validate({
        "kind": "imap", "name": "support", "host": account.host, "port": account.port,
        "security": "plain", "username": account.username,
        "password_file": account.password_file, "after_commit": "flag", **extra})


class Announcements:
    def __init__(self) -> None:
        self.times: list[float] = []
        self.event = threading.Event()
        self.beats: list[str] = []

    def announce(self) -> None:
        self.times.append(time.monotonic())
        self.event.set()

    def beat(self, state: str, detail: str, within: float) -> None:
        self.beats.append(state)

    def wait(self, count: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.times) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True


@pytest.fixture
def watching(dovecot: DovecotAccount) -> Iterator[tuple[IdleWatcher, Announcements]]:
    heard = Announcements()
    watcher = IdleWatcher(source(dovecot, idle_seconds=1), heard.announce, heard.beat,
                          backoff_base_seconds=0.1, backoff_max_seconds=0.5)
    watcher.start()
    yield watcher, heard
    watcher.stop()
    watcher.join(10)
    assert not watcher.is_alive()


def test_new_mail_is_announced_as_soon_as_it_is_appended(
    watching: tuple[IdleWatcher, Announcements], dovecot: DovecotAccount,
) -> None:
    _watcher, heard = watching
    assert heard.wait(1), "no announcement after connecting"  # what came meanwhile
    time.sleep(0.3)
    appended = time.monotonic()
    dovecot.append(make_mail(message_id="idle-1@example.jp"))
    assert heard.wait(2)
    assert heard.times[1] - appended < 1.0
    assert "idle" in heard.beats


def test_idle_is_issued_again_and_still_hears_mail(
    watching: tuple[IdleWatcher, Announcements], dovecot: DovecotAccount,
) -> None:
    watcher, heard = watching
    assert heard.wait(1)
    time.sleep(2.5)  # idle_seconds = 1: issued again twice or more
    assert watcher.idles >= 3
    assert len(heard.times) == 1  # re-issuing is no news
    dovecot.append(make_mail(message_id="idle-2@example.jp"))
    assert heard.wait(2)


def test_a_dropped_connection_is_opened_again_and_mail_still_announced(
    watching: tuple[IdleWatcher, Announcements], dovecot: DovecotAccount,
) -> None:
    watcher, heard = watching
    assert heard.wait(1)
    dovecot.kick()
    assert heard.wait(2, timeout=10), "no reconnect"  # announced again after reconnecting
    assert watcher.failures == 0 and "reconnecting" in heard.beats
    dovecot.append(make_mail(message_id="idle-3@example.jp"))
    assert heard.wait(3)


def test_a_server_that_is_down_is_retried_with_backoff(dovecot: DovecotAccount) -> None:
    heard = Announcements()
    dovecot.server.stop()
    watcher = IdleWatcher(source(dovecot), heard.announce, heard.beat,
                          backoff_base_seconds=0.05, backoff_max_seconds=0.2)
    watcher.start()
    try:
        deadline = time.monotonic() + 5
        while watcher.failures < 3:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert not heard.times
        dovecot.server.start()
        assert heard.wait(1, timeout=10)
    finally:
        watcher.stop()
        watcher.join(10)
        dovecot.server.ensure_running()


def test_only_exists_counts_as_news() -> None:
    assert announces_mail([(3, b"EXISTS")])
    assert not announces_mail([(3, b"EXPUNGE"), (2, b"FETCH", (b"FLAGS", ()))])
    assert not announces_mail([(b"OK", b"Still here")])


def test_a_claim_on_mail_that_arrived_after_the_select_is_still_fetched(
    dovecot: DovecotAccount,
) -> None:
    # Found by bench/latency.py: with mail arriving while two daemons poll, one
    # daemon took a claim another had just written for a UID its own connection
    # had not seen yet, found nothing, and settled the claim: the mail was lost.
    box = Mailbox(source(dovecot))
    box.open()
    try:
        uid = dovecot.append(make_mail(message_id="late@example.jp"))
        assert [f.uid for f in box.fetch_range(uid, uid)] == [uid]
    finally:
        box.close()
