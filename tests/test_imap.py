"""The IMAP poller against a real Dovecot: incremental, idempotent, commit before mark."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from imapclient import IMAPClient
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from madoguchi.app import Desk
from madoguchi.config import ImapSource, Settings, load_settings
from madoguchi.daemon import Daemon
from madoguchi.ingest.inbound import Inbound, Outcome, Sink
from madoguchi.ingest.sources.imap import ImapPoller
from madoguchi.ingest.sources.mailbox import ImapUnavailable
from madoguchi.ticketing.models import (
    IngestClaim,
    MailboxState,
    Message,
    PendingMark,
    QuarantineEntry,
    RawMessage,
    Ticket,
)
from tests.mailfactory import make_mail
from tests.test_daemon import Clock, failures_written_down, run_poll_job, source_backoff

if TYPE_CHECKING:
    from tests.servers.dovecot import DovecotAccount

JST = timezone(timedelta(hours=9))
SOURCE = "support-mailbox"


# -- mail ---------------------------------------------------------------------


def inquiry(n: int, *, padding: int = 0, **kwargs: object) -> bytes:
    """The n-th customer inquiry; the same n gives the same mail."""
    kwargs.setdefault("message_id", f"inquiry-{n}@mail.customer.example.co.jp")
    return make_mail(
        f"ライセンスについての問い合わせ {n}",
        f"サポートサービス番号: 1234-5678-9012\n問い合わせ {n} の本文です。\n" + "あ" * padding,
        **kwargs,  # type: ignore[arg-type]
    )


# -- the desk -----------------------------------------------------------------


def count(desk: Desk, model: type) -> int:
    with desk.factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def stored_messages(desk: Desk) -> list[Message]:
    with desk.factory() as session:
        return list(session.scalars(select(Message).order_by(Message.id)))


def position(desk: Desk) -> tuple[int, int] | None:
    """(UIDVALIDITY, last UID) the desk remembers for the INBOX."""
    with desk.factory() as session:
        state = session.get(MailboxState, (SOURCE, "INBOX"))
        return (state.uidvalidity, state.last_uid) if state else None


def open_claims(desk: Desk) -> list[tuple[int, int]]:
    """UID ranges handed out but not yet stored."""
    with desk.factory() as session:
        return [(c.first_uid, c.last_uid) for c in session.scalars(
            select(IngestClaim).order_by(IngestClaim.id))]


def owed_marks(desk: Desk) -> list[int]:
    with desk.factory() as session:
        return list(session.scalars(select(PendingMark.uid).order_by(PendingMark.uid)))


def forget_position(desk: Desk) -> None:
    with desk.factory() as session, session.begin():
        session.execute(delete(MailboxState))


def open_desk(sqlite_url: str, tmp_path: Path, **overrides: object) -> Desk:
    return Desk.open(load_settings(
        None, database_url=sqlite_url, storage_dir=tmp_path / "storage", sources=[], **overrides
    ))


@pytest.fixture
def desk(sqlite_url: str, tmp_path: Path) -> Iterator[Desk]:
    """Overrides the suite's ``desk``: SQLite only, as these tests are about the
    source; the one about idempotence also runs on PostgreSQL."""
    desk = open_desk(sqlite_url, tmp_path)
    yield desk
    desk.close()


def imap_source(account: DovecotAccount, **overrides: object) -> ImapSource:
    fields: dict[str, object] = {
        "name": SOURCE,
        "kind": "imap",
        "host": account.host,
        "port": account.port,
        "security": "plain",
        "username": account.username,
        "password_file": account.password_file,
        "timeout_seconds": 5,
        "interval_seconds": 30,
    }
    return ImapSource.model_validate(fields | overrides)


def poller(
    account: DovecotAccount,
    desk: Desk,
    *,
    sink: Sink | None = None,
    batch_size: int = 100,
    **overrides: object,
) -> ImapPoller:
    return ImapPoller(
        imap_source(account, **overrides), sink or desk.pipeline, desk.factory, batch_size
    )


class SinkWrapper:
    """The real pipeline, with something done around chosen batches."""

    def __init__(
        self,
        inner: Sink,
        *,
        before_commit: Callable[[int], None] | None = None,
        after_commit: Callable[[int], None] | None = None,
    ) -> None:
        self.inner = inner
        self.before_commit = before_commit
        self.after_commit = after_commit
        self.batches: list[list[Inbound]] = []

    def ingest_batch(
        self,
        items: Sequence[Inbound],
        *,
        in_transaction: Callable[[Session], None] | None = None,
    ) -> list[Outcome]:
        self.batches.append(list(items))
        if self.before_commit is not None:
            self.before_commit(len(self.batches))
        outcomes = self.inner.ingest_batch(items, in_transaction=in_transaction)
        if self.after_commit is not None:
            self.after_commit(len(self.batches))
        return outcomes


class SimulatedCrash(Exception):
    pass


# -- first and later polls ------------------------------------------------------


def test_first_poll_opens_a_ticket_per_message(dovecot: DovecotAccount, desk: Desk) -> None:
    dovecot.append(make_mail("ログインできません", "管理画面にログインできません。"))
    dovecot.append(make_mail("見積もりのお願い", "ユーザー追加の見積もりをお願いします。",
                             charset="utf-8"))
    dovecot.append(make_mail("請求書について", "請求書の宛名を変更したいです。",
                             charset="shift_jis"))

    report = poller(dovecot, desk).poll_once()

    assert (report.fetched, report.created, report.duplicate) == (3, 3, 0)
    assert count(desk, Ticket) == 3
    assert [m.subject for m in stored_messages(desk)] == [
        "ログインできません", "見積もりのお願い", "請求書について"
    ]
    assert position(desk) == (dovecot.uidvalidity(), 3)


def test_received_at_is_the_imap_internaldate(dovecot: DovecotAccount, desk: Desk) -> None:
    # Sent on Thursday evening, delivered to the desk at 23:15 JST on Friday.
    internaldate = datetime(2026, 1, 9, 23, 15, 42, tzinfo=JST)
    mail = inquiry(1, date=datetime(2026, 1, 8, 18, 0, tzinfo=JST))
    uid = dovecot.append(mail, internaldate=internaldate)

    poller(dovecot, desk, after_commit="none").poll_once()

    (message,) = stored_messages(desk)
    assert message.received_at == internaldate
    assert message.received_at.tzinfo is not None
    with desk.factory() as session:
        assert session.scalar(select(Ticket.received_at)) == internaldate
        raw = session.scalars(select(RawMessage)).one()
    # The bytes as the server holds them, unaltered.
    assert raw.sha256 == hashlib.sha256(mail).hexdigest()
    assert raw.source == SOURCE
    assert raw.source_ref == f"INBOX;uidvalidity={dovecot.uidvalidity()};uid={uid}"


def test_second_poll_takes_only_the_new_mail(dovecot: DovecotAccount, desk: Desk) -> None:
    for n in (1, 2):
        dovecot.append(inquiry(n))
    poll = poller(dovecot, desk, after_commit="none")
    assert poll.poll_once().created == 2

    # Nothing new: "UID 3:*" still answers the highest UID, 2, which is not new.
    assert poll.poll_once().fetched == 0
    dovecot.append(inquiry(3))
    report = poll.poll_once()

    assert (report.fetched, report.created) == (1, 1)
    assert count(desk, Ticket) == 3
    assert position(desk) == (dovecot.uidvalidity(), 3)


def test_mail_is_claimed_in_batches_each_committed_with_its_claim(
    dovecot: DovecotAccount, desk: Desk
) -> None:
    for n in range(5):
        dovecot.append(inquiry(n))
    claims: list[list[tuple[int, int]]] = []

    def note_claims(_batch: int) -> None:
        claims.append(open_claims(desk))

    sink = SinkWrapper(desk.pipeline, after_commit=note_claims)

    report = poller(dovecot, desk, sink=sink, batch_size=2).poll_once()

    assert report.created == 5
    assert [len(batch) for batch in sink.batches] == [2, 2, 1]
    # All five were handed out at once; each batch settled its own claim.
    assert position(desk) == (dovecot.uidvalidity(), 5)
    assert claims == [[(3, 4), (5, 5)], [(5, 5)], []]


# -- idempotence ----------------------------------------------------------------


@pytest.fixture
def desk_on_each_database(settings: Settings) -> Iterator[Desk]:
    desk = Desk.open(settings)
    yield desk
    desk.close()


def test_a_second_run_over_the_same_mailbox_creates_nothing_new(
    dovecot: DovecotAccount, desk_on_each_database: Desk
) -> None:
    desk = desk_on_each_database
    dovecot.append(inquiry(1))
    dovecot.append(make_mail("Message-ID のないメール", "ヘッダーがありません。",
                             message_id=""))
    dovecot.append(inquiry(2, charset="utf-8"))
    poll = poller(dovecot, desk, after_commit="none")
    first = poll.poll_once()
    assert (first.fetched, first.created) == (3, 3)

    # As after a lost database position, or a second desk reading the mailbox.
    forget_position(desk)
    again = poll.poll_once()

    assert (again.fetched, again.duplicate, again.created, again.threaded) == (3, 3, 0, 0)
    assert count(desk, Ticket) == 3
    assert count(desk, Message) == 3
    assert any(m.message_id is None for m in stored_messages(desk))
    # after_commit = "none" leaves the server as it was: not even \Seen.
    assert all("\\Seen" not in flags for flags in dovecot.messages().values())


def test_the_same_message_delivered_twice_is_one_message(
    dovecot: DovecotAccount, desk: Desk
) -> None:
    dovecot.append(inquiry(1))
    dovecot.append(inquiry(1))

    report = poller(dovecot, desk).poll_once()

    assert (report.created, report.duplicate, report.marked) == (1, 1, 2)
    assert count(desk, Message) == 1


def test_new_uidvalidity_rereads_the_folder_without_duplicates(
    dovecot: DovecotAccount, desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    for n in (1, 2):
        dovecot.append(inquiry(n))
    poll = poller(dovecot, desk, after_commit="none")
    poll.poll_once()

    new_validity = dovecot.new_uidvalidity()
    dovecot.append(inquiry(3))
    with caplog.at_level(logging.WARNING, logger="madoguchi.ingest.imap"):
        report = poll.poll_once()

    assert report.uidvalidity_reset
    assert (report.fetched, report.duplicate, report.created) == (3, 2, 1)
    assert count(desk, Ticket) == 3
    assert position(desk) == (new_validity, 3)
    assert "UIDVALIDITY" in caplog.text


def test_marks_owed_under_an_old_uidvalidity_are_dropped(
    dovecot: DovecotAccount, desk: Desk
) -> None:
    dovecot.append(inquiry(1))

    def crash(_batch: int) -> None:
        raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        poller(dovecot, desk, sink=SinkWrapper(desk.pipeline, after_commit=crash)).poll_once()
    assert owed_marks(desk) == [1]
    dovecot.new_uidvalidity()

    report = poller(dovecot, desk).poll_once()

    assert report.uidvalidity_reset
    assert (report.fetched, report.duplicate, report.marked) == (1, 1, 1)
    assert owed_marks(desk) == []
    assert dovecot.messages() == {}


# -- failures -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "committed", "owed"),
    [
        # Batch 1 (UIDs 1-2) committed, then the connection dies before its move.
        ("after_commit", 2, [1, 2]),
        # Batch 2 (UIDs 3-4) fetched, the connection dies while it is committed.
        ("before_commit", 4, [3, 4]),
    ],
    ids=["after-first-commit", "during-second-commit"],
)
def test_connection_dropped_mid_poll_loses_and_doubles_nothing(
    dovecot: DovecotAccount, desk: Desk, when: str, committed: int, owed: list[int]
) -> None:
    for n in range(5):
        dovecot.append(inquiry(n))

    def drop_connection(batch: int) -> None:
        if batch == (1 if when == "after_commit" else 2):
            dovecot.kick()

    sink = SinkWrapper(desk.pipeline, **{when: drop_connection})  # type: ignore[arg-type]

    with pytest.raises(ImapUnavailable):
        poller(dovecot, desk, sink=sink, batch_size=2).poll_once()

    # Committed, but not moved yet: the moves are owed.
    assert count(desk, Ticket) == committed
    assert owed_marks(desk) == owed
    assert len(dovecot.messages()) == 5 - (committed - len(owed))

    report = poller(dovecot, desk, batch_size=2).poll_once()

    assert (report.fetched, report.created, report.duplicate) == (5 - committed, 5 - committed, 0)
    assert report.marked == 5 - (committed - len(owed))
    assert count(desk, Ticket) == 5
    assert count(desk, Message) == 5
    assert owed_marks(desk) == []
    assert dovecot.messages() == {}
    assert len(dovecot.messages("Madoguchi.Processed")) == 5


def test_crash_between_commit_and_mark_is_finished_by_the_next_poll(
    dovecot: DovecotAccount, desk: Desk
) -> None:
    for n in (1, 2):
        dovecot.append(inquiry(n))

    def crash(_batch: int) -> None:
        raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        poller(dovecot, desk, sink=SinkWrapper(desk.pipeline, after_commit=crash)).poll_once()
    assert count(desk, Ticket) == 2
    assert owed_marks(desk) == [1, 2]
    assert len(dovecot.messages()) == 2

    report = poller(dovecot, desk).poll_once()

    assert (report.fetched, report.marked) == (0, 2)
    assert count(desk, Message) == 2
    assert owed_marks(desk) == []
    assert dovecot.messages() == {}


def test_claims_of_a_poller_that_died_are_taken_over_and_stored_once(
    dovecot: DovecotAccount, desk_on_each_database: Desk
) -> None:
    desk = desk_on_each_database
    for n in range(5):
        dovecot.append(inquiry(n))

    def die_in_second_batch(batch: int) -> None:
        if batch == 2:
            raise SimulatedCrash

    dying = SinkWrapper(desk.pipeline, before_commit=die_in_second_batch)
    with pytest.raises(SimulatedCrash):
        poller(dovecot, desk, sink=dying, batch_size=2).poll_once()
    # The first batch is stored; the rest is handed out but not stored.
    assert count(desk, Ticket) == 2
    assert open_claims(desk) == [(3, 4), (5, 5)]
    assert position(desk) == (dovecot.uidvalidity(), 5)

    report = poller(dovecot, desk, batch_size=2).poll_once()

    assert (report.fetched, report.created, report.duplicate) == (3, 3, 0)
    assert count(desk, Message) == 5
    assert open_claims(desk) == []
    assert owed_marks(desk) == []
    assert dovecot.messages() == {}


@contextmanager
def first_claim_held_elsewhere(desk: Desk) -> Iterator[None]:
    """Another process (as another daemon would) holds the oldest claim while inside."""
    with desk.factory() as session:
        claim_id = session.scalars(select(IngestClaim.id).order_by(IngestClaim.id)).first()
    assert claim_id is not None
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_CLAIM, desk.settings.database_url, str(claim_id)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=Path(__file__).parent.parent,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        yield
    finally:
        holder.kill()  # its lock goes with it
        holder.wait(timeout=10)


def claim_all_and_die(dovecot: DovecotAccount, desk: Desk) -> None:
    """A poll that hands out every new UID as claims, in batches of 2, and stores none."""

    def die_at_once(_batch: int) -> None:
        raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        poller(dovecot, desk, sink=SinkWrapper(desk.pipeline, before_commit=die_at_once),
               batch_size=2).poll_once()


HOLD_CLAIM = """
import sys
from madoguchi.ingest.sources.claims import claim_locks
from madoguchi.ticketing.db import make_engine
locks = claim_locks(make_engine(sys.argv[1]))
assert locks.try_lock(int(sys.argv[2]))
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin or kills us
"""


def test_a_claim_held_by_a_live_poller_is_skipped_until_its_holder_dies(
    dovecot: DovecotAccount, desk_on_each_database: Desk
) -> None:
    desk = desk_on_each_database
    for n in range(4):
        dovecot.append(inquiry(n))

    claim_all_and_die(dovecot, desk)
    assert open_claims(desk) == [(1, 2), (3, 4)]

    with first_claim_held_elsewhere(desk):
        report = poller(dovecot, desk, batch_size=2).poll_once()
        assert (report.fetched, report.created) == (2, 2)
        assert open_claims(desk) == [(1, 2)]
        assert sorted(dovecot.messages()) == [1, 2]

    report = poller(dovecot, desk, batch_size=2).poll_once()

    assert (report.fetched, report.created, report.duplicate) == (2, 2, 0)
    assert count(desk, Message) == 4
    assert open_claims(desk) == []
    assert dovecot.messages() == {}


def test_a_reply_whose_original_another_poller_holds_waits_for_it(
    dovecot: DovecotAccount, desk_on_each_database: Desk
) -> None:
    desk = desk_on_each_database
    dovecot.append(inquiry(1))
    dovecot.append(inquiry(2))
    dovecot.append(make_mail(
        "Re: ライセンスについての問い合わせ 1", "追加の情報です。",
        in_reply_to="inquiry-1@mail.customer.example.co.jp",
        references=["inquiry-1@mail.customer.example.co.jp"],
        message_id="reply-1@mail.customer.example.co.jp",
    ))
    dovecot.append(inquiry(4))

    claim_all_and_die(dovecot, desk)
    with first_claim_held_elsewhere(desk):
        report = poller(dovecot, desk, batch_size=2).poll_once()
        # The reply (UID 3) answers mail in the held claim: it waits; UID 4 does not.
        assert (report.fetched, report.created) == (1, 1)
        assert open_claims(desk) == [(1, 2), (3, 3)]
        # A poll while the older claim is still held leaves the reply waiting.
        assert poller(dovecot, desk, batch_size=2).poll_once().fetched == 0

    report = poller(dovecot, desk, batch_size=2).poll_once()

    assert (report.fetched, report.created, report.threaded) == (3, 2, 1)
    assert open_claims(desk) == []
    with desk.factory() as session:
        reply = session.scalars(select(Message).where(
            Message.message_id == "reply-1@mail.customer.example.co.jp")).one()
        original = session.scalars(select(Message).where(
            Message.message_id == "inquiry-1@mail.customer.example.co.jp")).one()
        assert reply.ticket_id == original.ticket_id
    assert count(desk, Ticket) == 3
    assert dovecot.messages() == {}


def reply_to(n: int, k: int) -> bytes:
    original = f"inquiry-{n}@mail.customer.example.co.jp"
    return make_mail(f"Re: ライセンスについての問い合わせ {n}", f"追加の情報 {k} です。",
                     in_reply_to=original, references=[original],
                     message_id=f"reply-{n}-{k}@mail.customer.example.co.jp")


def test_replies_held_back_are_stored_together_once_their_originals_are(
    dovecot: DovecotAccount, desk_on_each_database: Desk
) -> None:
    desk = desk_on_each_database
    dovecot.append(inquiry(1))
    dovecot.append(inquiry(2))
    for k in range(3):
        dovecot.append(reply_to(1 + k % 2, k))  # UIDs 3, 4, 5
    dovecot.append(inquiry(6))

    claim_all_and_die(dovecot, desk)
    assert open_claims(desk) == [(1, 2), (3, 4), (5, 6)]
    with first_claim_held_elsewhere(desk):
        poller(dovecot, desk, batch_size=2).poll_once()
        assert open_claims(desk) == [(1, 2), (3, 3), (4, 4), (5, 5)]

    sink = SinkWrapper(desk.pipeline)
    report = poller(dovecot, desk, sink=sink, batch_size=5).poll_once()

    # The originals' claim, then the three held replies in one batch, not three.
    assert [[item.source_ref.rsplit("=", 1)[1] for item in batch] for batch in sink.batches] \
        == [["1", "2"], ["3", "4", "5"]]
    assert (report.fetched, report.created, report.threaded) == (5, 2, 3)
    assert open_claims(desk) == []
    with desk.factory() as session:
        ticket_of = dict(session.execute(select(Message.message_id, Message.ticket_id)).all())
    for k in range(3):
        assert ticket_of[f"reply-{1 + k % 2}-{k}@mail.customer.example.co.jp"] == \
            ticket_of[f"inquiry-{1 + k % 2}@mail.customer.example.co.jp"]
    assert dovecot.messages() == {}


def test_a_batch_of_held_replies_is_no_larger_than_a_batch(
    dovecot: DovecotAccount, desk_on_each_database: Desk
) -> None:
    desk = desk_on_each_database
    dovecot.append(inquiry(1))
    dovecot.append(inquiry(2))
    for k in range(4):
        dovecot.append(reply_to(1, k))  # UIDs 3-6
    claim_all_and_die(dovecot, desk)
    with first_claim_held_elsewhere(desk):
        poller(dovecot, desk, batch_size=2).poll_once()
        assert open_claims(desk) == [(1, 2), (3, 3), (4, 4), (5, 5), (6, 6)]

    sink = SinkWrapper(desk.pipeline)
    poller(dovecot, desk, sink=sink, batch_size=3).poll_once()

    assert [len(batch) for batch in sink.batches] == [2, 3, 1]
    assert open_claims(desk) == [] and count(desk, Message) == 6


def test_failure_before_commit_leaves_the_batch_to_the_next_poll(
    dovecot: DovecotAccount, desk: Desk
) -> None:
    dovecot.append(inquiry(1))

    class BrokenSink:
        def ingest_batch(
            self,
            items: Sequence[Inbound],
            *,
            in_transaction: Callable[[Session], None] | None = None,
        ) -> list[Outcome]:
            raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        poller(dovecot, desk, sink=BrokenSink()).poll_once()
    assert count(desk, Ticket) == 0
    assert len(dovecot.messages()) == 1

    report = poller(dovecot, desk).poll_once()

    assert (report.fetched, report.created, report.marked) == (1, 1, 1)


def test_server_down_at_start_is_retried_with_backoff(
    dovecot: DovecotAccount, desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    dovecot.append(inquiry(1))
    dovecot.server.stop()
    clock = Clock()
    daemon = Daemon(desk, pollers={SOURCE: poller(dovecot, desk)},
                    backoff=source_backoff(desk, clock, base=1.0))

    def after(failures: int) -> None:
        written = failures_written_down(desk)[SOURCE]
        assert written.failures == failures
        failing = daemon.backoff.failing(SOURCE)
        assert failing is not None and written.next_attempt_at == failing.next_attempt_at
        assert written.last_error.startswith("ImapUnavailable: connect to ")
        if failures == 2:
            dovecot.server.start()

    with caplog.at_level(logging.WARNING, logger="madoguchi.ingest.backoff"):
        delays = run_poll_job(daemon, SOURCE, clock, after)

    assert count(desk, Ticket) == 1
    # Two failed polls, each followed by a doubling wait; then back to the interval.
    assert len(delays) == 2
    assert 0.5 <= delays[0] <= 1.0
    assert 1.0 <= delays[1] <= 2.0
    assert failures_written_down(desk) == {}
    assert "poll failed (2 in a row)" in caplog.text


def test_backoff_doubles_with_jitter_up_to_its_cap_and_starts_over_after_a_good_poll(
    dovecot: DovecotAccount, desk: Desk
) -> None:
    dovecot.server.stop()
    clock = Clock()
    daemon = Daemon(desk, pollers={SOURCE: poller(dovecot, desk)},
                    backoff=source_backoff(desk, clock, base=2.0, cap=60.0, seed=1))
    delays = []
    for _ in range(11):
        with pytest.raises(ImapUnavailable):
            daemon.poll(SOURCE)
        failing = daemon.backoff.failing(SOURCE)
        assert failing is not None
        delays.append((failing.next_attempt_at - clock()).total_seconds())
        clock.now = failing.next_attempt_at

    for failures, delay in enumerate(delays, start=1):
        ceiling = min(60.0, 2.0 * 2 ** (failures - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 60.0
    assert len(set(delays)) == len(delays)
    assert failures_written_down(desk)[SOURCE].failures == 11

    dovecot.server.start()
    daemon.poll(SOURCE)
    assert daemon.backoff.failing(SOURCE) is None and failures_written_down(desk) == {}
    dovecot.server.stop()
    with pytest.raises(ImapUnavailable):
        daemon.poll(SOURCE)
    again = daemon.backoff.failing(SOURCE)
    assert again is not None and again.failures == 1
    assert 1.0 <= (again.next_attempt_at - clock()).total_seconds() <= 2.0
    assert failures_written_down(desk)[SOURCE].failures == 1


# -- marking after commit -------------------------------------------------------


def test_move_after_commit_puts_mail_in_the_move_to_folder(
    dovecot: DovecotAccount, desk: Desk
) -> None:
    for n in (1, 2):
        dovecot.append(inquiry(n))

    # Configured with "/", Dovecot's maildir separator is ".".
    report = poller(dovecot, desk, after_commit="move", move_to="Madoguchi/Processed").poll_once()

    assert report.marked == 2
    assert dovecot.messages() == {}
    assert len(dovecot.messages("Madoguchi.Processed")) == 2
    assert "Madoguchi.Processed" in dovecot.folders()
    assert owed_marks(desk) == []


def test_move_without_the_move_capability_copies_and_expunges(
    dovecot: DovecotAccount, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    dovecot.append(inquiry(1))
    dovecot.create_folder("Done")
    real = IMAPClient.has_capability
    monkeypatch.setattr(
        IMAPClient, "has_capability",
        lambda self, name: name.upper() != "MOVE" and real(self, name),
    )

    report = poller(dovecot, desk, move_to="Done").poll_once()

    assert report.marked == 1
    assert dovecot.messages() == {}
    assert len(dovecot.messages("Done")) == 1


def test_flag_after_commit_sets_the_flag_and_leaves_the_mail(
    dovecot: DovecotAccount, desk: Desk
) -> None:
    for n in (1, 2):
        dovecot.append(inquiry(n))

    report = poller(dovecot, desk, after_commit="flag", flag="\\Seen").poll_once()

    assert report.marked == 2
    assert all("\\Seen" in flags for flags in dovecot.messages().values())
    assert len(dovecot.messages()) == 2


def test_flag_after_commit_with_a_keyword(dovecot: DovecotAccount, desk: Desk) -> None:
    uid = dovecot.append(inquiry(1))

    poller(dovecot, desk, after_commit="flag", flag="$Madoguchi").poll_once()

    assert "$Madoguchi" in dovecot.messages()[uid]


def test_a_mark_the_server_refuses_does_not_stop_new_mail(
    dovecot: DovecotAccount, desk: Desk
) -> None:
    dovecot.append(inquiry(1))
    refused = poller(dovecot, desk, after_commit="flag", flag="\\NoSuchSystemFlag")
    first = refused.poll_once()
    dovecot.append(inquiry(2))

    second = refused.poll_once()

    assert (first.created, first.mark_failed) == (1, 1)
    assert (second.created, second.mark_failed) == (1, 2)
    assert owed_marks(desk) == [1, 2]
    # Once the configuration is fixed, the owed marks are made.
    fixed = poller(dovecot, desk, after_commit="flag", flag="\\Seen").poll_once()
    assert (fixed.fetched, fixed.marked) == (0, 2)
    assert owed_marks(desk) == []


# -- limits ---------------------------------------------------------------------


def test_large_message_is_fetched_on_its_own_and_quarantined(
    dovecot: DovecotAccount, sqlite_url: str, tmp_path: Path
) -> None:
    desk = open_desk(sqlite_url, tmp_path, limits={"max_message_bytes": 20_000})
    try:
        dovecot.append(inquiry(1))
        big = dovecot.append(inquiry(2, padding=20_000))
        dovecot.append(inquiry(3))
        sink = SinkWrapper(desk.pipeline)
        poll = ImapPoller(imap_source(dovecot), sink, desk.factory, 100,
                          max_batch_bytes=20_000)

        report = poll.poll_once()

        assert [len(batch) for batch in sink.batches] == [1, 1, 1]
        assert (report.created, report.quarantined, report.marked) == (2, 1, 3)
        with desk.factory() as session:
            entry = session.scalars(select(QuarantineEntry)).one()
        assert entry.size > 20_000
        assert entry.source_ref.endswith(f";uid={big}")
        assert dovecot.messages() == {}
    finally:
        desk.close()
