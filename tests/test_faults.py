"""Faults, each against the real component: the poll fails or waits, nothing is lost.

Every test here causes a fault in a real component and checks the desk's
promise: a poll that meets the fault fails cleanly (or waits the fault
out), marks nothing on the server or in the folder that was not committed,
quarantines nothing that was not the message's fault, and a later poll,
once the fault is gone, stores every message exactly once.

- (a) SQLite locked: another process holds the write lock
  (``BEGIN IMMEDIATE``/``EXCLUSIVE``) from the moment the batch's
  transaction first writes; the lock is real, a SQLAlchemy event hook only
  chooses the moment.
- (b) PostgreSQL stopped (``pg_ctl stop -m fast``, started again while the
  daemon's poll job backs off), restarted (``pg_ctl restart -m fast``), or the desk's
  backend terminated (``pg_terminate_backend``) just before a chosen INSERT
  of a batch: a throwaway server of this module's own
  (``tests.postgres.PostgresCluster``), never the shared one at 127.0.0.1:5432.
- (c) disk full while the blob store writes: a real size-limited tmpfs
  mounted as the storage directory when mounting is permitted (the test
  prints which path it took and why); otherwise ENOSPC is injected into the
  blob store's writes, in the main process and in the worker processes.
- (d) Dovecot stopped and restarted mid-batch, with the daemon's poll job backing off.
  SMTP refusing then recovering is in ``test_outbox.py``
  (``test_greylisted_451_is_retried_with_backoff_then_sent_when_the_server_recovers``).

The desk's own faults (a locked database, a full disk, OCR missing) never
quarantine a message: the poll fails, the source keeps the message, and the
next poll stores it.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from madoguchi.app import Desk
from madoguchi.config import FaxSpoolSource, MaildirSource
from madoguchi.daemon import Daemon
from madoguchi.ingest.inbound import Inbound, Outcome
from madoguchi.ingest.sources.fax_spool import FaxSpoolPoller
from madoguchi.ingest.sources.folder import MaildirPoller
from madoguchi.ingest.sources.imap import ImapPoller
from madoguchi.ticketing.blobstore import StorageUnavailableError
from madoguchi.ticketing.models import (
    IngestClaim,
    Message,
    PendingMark,
    QuarantineEntry,
    Ticket,
)
from tests.conftest import make_settings
from tests.faxfactory import letter_pdf, send_fax
from tests.mailfactory import make_mail
from tests.postgres import PostgresCluster, PostgresDatabases
from tests.test_daemon import Clock, failures_written_down, run_poll_job, source_backoff
from tests.test_imap import imap_source

# The system lane: whole processes, for minutes (tests/conftest.py).
pytestmark = pytest.mark.slow

if TYPE_CHECKING:
    from tests.servers.dovecot import DovecotAccount

SOURCE = "support-mailbox"
PROCESSED = "Madoguchi.Processed"  # the default move_to, with Dovecot's "." separator
CHARSETS = ("iso-2022-jp", "shift_jis", "euc-jp", "utf-8", "cp932")


# -- mail and the desk's state ------------------------------------------------------


def inquiry(n: int, **kwargs: Any) -> bytes:
    """The n-th customer inquiry, in the n-th of the usual Japanese charsets."""
    kwargs.setdefault("message_id", f"fault-{n}@mail.customer.example.co.jp")
    kwargs.setdefault("charset", CHARSETS[n % len(CHARSETS)])
    return make_mail(
        f"ライセンス認証エラーについて（{n}）",
        "サポートサービス番号: 1234-5678-9012\n"
        f"株式会社サンプルの山田です。\n問い合わせ {n} です。\n",
        **kwargs,
    )


def expected_ids(numbers: Sequence[int]) -> list[str]:
    return sorted(f"fault-{n}@mail.customer.example.co.jp" for n in numbers)


def count(desk: Desk, model: type) -> int:
    with desk.factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def stored_ids(desk: Desk) -> list[str]:
    """Message-IDs of the stored messages, one entry per stored row (doubles show)."""
    with desk.factory() as session:
        return sorted(m or "" for m in session.scalars(select(Message.message_id)))


def ticket_numbers(desk: Desk) -> list[str]:
    with desk.factory() as session:
        return sorted(session.scalars(select(Ticket.number)))


def quarantined(desk: Desk) -> list[str]:
    with desk.factory() as session:
        return [f"{q.reason_code}: {q.reason}" for q in session.scalars(select(QuarantineEntry))]


def open_claims(desk: Desk) -> list[tuple[int, int]]:
    with desk.factory() as session:
        return [(c.first_uid, c.last_uid)
                for c in session.scalars(select(IngestClaim).order_by(IngestClaim.id))]


def owed_marks(desk: Desk) -> list[int]:
    with desk.factory() as session:
        return list(session.scalars(select(PendingMark.uid).order_by(PendingMark.uid)))


def assert_untouched_on_server(dovecot: DovecotAccount, uids: Sequence[int]) -> None:
    """Still in the INBOX, not flagged \\Seen, nothing moved: nothing marked before commit."""
    inbox = dovecot.messages()
    assert sorted(inbox) == sorted(uids)
    assert all("\\Seen" not in flags for flags in inbox.values())
    assert PROCESSED not in dovecot.folders() or dovecot.messages(PROCESSED) == {}


def assert_all_stored_once(desk: Desk, numbers: Sequence[int]) -> None:
    assert stored_ids(desk) == expected_ids(numbers)
    assert count(desk, Ticket) == len(numbers)
    assert quarantined(desk) == []


def error_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def open_desk(database_url: str, tmp_path: Path, **overrides: object) -> Desk:
    return Desk.open(make_settings(database_url, tmp_path, **overrides))


def imap_poller(account: DovecotAccount, desk: Desk, sink: Any = None, **kwargs: Any
                ) -> ImapPoller:
    return ImapPoller(imap_source(account), sink or desk.pipeline, desk.factory, 100, **kwargs)


class BeforeBatch:
    """The real pipeline, with ``hook`` called as each batch is handed to it."""

    def __init__(self, desk: Desk, hook: Callable[[int], None]) -> None:
        self.inner = desk.pipeline
        self.hook = hook
        self.batches = 0

    def ingest_batch(
        self,
        items: Sequence[Inbound],
        *,
        in_transaction: Callable[[Session], None] | None = None,
    ) -> list[Outcome]:
        self.batches += 1
        self.hook(self.batches)
        return self.inner.ingest_batch(items, in_transaction=in_transaction)


# -- (a) SQLite locked ------------------------------------------------------------------

_HOLD_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=float(sys.argv[3]))
try:
    conn.execute("BEGIN " + sys.argv[2])
except sqlite3.OperationalError as exc:
    print("busy", exc, flush=True)
    sys.exit()
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
conn.close()
"""


class WriteLock:
    """Another process holding the SQLite database's write lock until released."""

    def __init__(self, database: Path, mode: str = "IMMEDIATE") -> None:
        self.database = database
        self.mode = mode
        self._proc: subprocess.Popen[str] | None = None
        self.acquired = 0

    @property
    def held(self) -> bool:
        return self._proc is not None

    def acquire(self, wait: float = 10.0) -> bool:
        """Take the lock, waiting up to ``wait`` s for the desk to let go; False if it did not."""
        assert self._proc is None
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _HOLD_WRITE_LOCK, str(self.database), self.mode, str(wait)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if line != "locked\n":
            self.release()
            return False
        self.acquired += 1
        return True

    def release(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        try:
            proc.stdin.write("\n")
            proc.stdin.close()
            proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(10)


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    assert database
    return Path(database)


@pytest.fixture
def write_lock(sqlite_url: str) -> Iterator[WriteLock]:
    lock = WriteLock(sqlite_path(sqlite_url))
    yield lock
    lock.release()


def set_busy_timeout(engine: Engine, milliseconds: int) -> None:
    """Wait at most this long for a lock (the desk's own setting is 30 s: too long here).

    Runs after the desk's own connect hook, so it wins; only the time changes.
    """

    @event.listens_for(engine, "connect")
    def _busy(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute(f"PRAGMA busy_timeout={milliseconds}")

    engine.dispose()


def lock_at_first_write(engine: Engine, lock: WriteLock) -> Callable[[int], None]:
    """A ``BeforeBatch`` hook: the lock is taken just before the batch's first write.

    The batch's transaction has read (dedupe keys, contacts...) but holds
    no write lock yet; the other process takes it, and the batch's first
    INSERT/UPDATE has to wait for it.
    """
    armed = threading.Event()

    @event.listens_for(engine, "before_cursor_execute")
    def _take(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if armed.is_set() and statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            armed.clear()
            if not lock.acquire():
                raise RuntimeError("the other process did not get the write lock")

    return lambda batch: armed.set() if batch == 1 else None


def locked_errors(engine: Engine, on_error: Callable[[int], None]) -> None:
    """Call ``on_error(n)`` at the n-th "database is locked" the engine meets."""
    seen = [0]

    @event.listens_for(engine, "handle_error")
    def _count(context: Any) -> None:
        if "database is locked" in str(context.original_exception):
            seen[0] += 1
            on_error(seen[0])


@pytest.mark.parametrize("mode", ["IMMEDIATE", "EXCLUSIVE"])
def test_sqlite_lock_held_past_the_busy_timeout_fails_the_imap_poll_then_all_are_stored_once(
    dovecot: DovecotAccount, sqlite_url: str, tmp_path: Path, write_lock: WriteLock, mode: str
) -> None:
    desk = open_desk(sqlite_url, tmp_path)
    try:
        set_busy_timeout(desk.engine, 200)
        uids = [dovecot.append(inquiry(n)) for n in range(3)]
        write_lock.mode = mode
        sink = BeforeBatch(desk, lock_at_first_write(desk.engine, write_lock))

        with pytest.raises(OperationalError, match="database is locked"):
            imap_poller(dovecot, desk, sink).poll_once()

        assert write_lock.acquired == 1 and write_lock.held
        # Read while the lock is still held (WAL): nothing of the batch committed.
        assert stored_ids(desk) == []
        assert quarantined(desk) == []
        assert open_claims(desk) == [(uids[0], uids[-1])]  # handed out, not stored
        assert owed_marks(desk) == []
        assert_untouched_on_server(dovecot, uids)

        write_lock.release()
        report = imap_poller(dovecot, desk).poll_once()

        assert (report.fetched, report.created, report.duplicate, report.quarantined) == (
            3, 3, 0, 0)
        assert report.marked == 3
        assert_all_stored_once(desk, range(3))
        assert open_claims(desk) == [] and owed_marks(desk) == []
        assert dovecot.messages() == {}
        assert len(dovecot.messages(PROCESSED)) == 3
    finally:
        desk.close()


def test_sqlite_lock_held_past_the_busy_timeout_leaves_maildir_files_unmarked(
    sqlite_url: str, tmp_path: Path, write_lock: WriteLock
) -> None:
    desk = open_desk(sqlite_url, tmp_path)
    try:
        set_busy_timeout(desk.engine, 200)
        box = tmp_path / "Maildir"
        source = MaildirSource(kind="maildir", name="box", path=box)
        poller = MaildirPoller(source, BeforeBatch(desk, lock_at_first_write(desk.engine,
                                                                            write_lock)))
        for n in range(3):
            (box / "new" / f"{1700000000 + n}.M{n}.desk").write_bytes(inquiry(n))

        with pytest.raises(OperationalError, match="database is locked"):
            poller.poll_once()

        assert write_lock.held
        assert stored_ids(desk) == [] and quarantined(desk) == []
        assert len(list((box / "new").iterdir())) == 3
        assert list((box / "cur").iterdir()) == []

        write_lock.release()
        report = MaildirPoller(source, desk.pipeline).poll_once()

        assert (report.taken, report.created, report.quarantined) == (3, 3, 0)
        assert_all_stored_once(desk, range(3))
        assert list((box / "new").iterdir()) == []
        assert all(p.name.endswith(":2,S") for p in (box / "cur").iterdir())
    finally:
        desk.close()


def test_sqlite_lock_shorter_than_the_busy_timeout_is_waited_out(
    sqlite_url: str, tmp_path: Path, write_lock: WriteLock
) -> None:
    # The desk's own busy timeout (30 s); the other writer lets go after 1 s.
    desk = open_desk(sqlite_url, tmp_path)
    try:
        box = tmp_path / "Maildir"
        take = lock_at_first_write(desk.engine, write_lock)

        def lock_for_a_second(batch: int) -> None:
            take(batch)
            threading.Timer(1.0, write_lock.release).start()

        poller = MaildirPoller(MaildirSource(kind="maildir", name="box", path=box),
                               BeforeBatch(desk, lock_for_a_second))
        for n in range(3):
            (box / "new" / f"{1700000000 + n}.M{n}.desk").write_bytes(inquiry(n))

        started = time.monotonic()
        report = poller.poll_once()
        waited = time.monotonic() - started

        assert write_lock.acquired == 1
        assert waited >= 1.0  # it did wait for the other writer
        assert (report.taken, report.created, report.quarantined) == (3, 3, 0)
        assert_all_stored_once(desk, range(3))
    finally:
        desk.close()


def test_sqlite_lock_released_during_the_careful_pass_quarantines_nothing(
    dovecot: DovecotAccount, sqlite_url: str, tmp_path: Path, write_lock: WriteLock
) -> None:
    """A lock that outlasts the fast path's wait and the careful pass's first one.

    With the desk's 30 s busy timeout: a lock held between 60 s and 90 s
    (a backup, a VACUUM, a long import in the web desk).
    """
    desk = open_desk(sqlite_url, tmp_path)
    try:
        set_busy_timeout(desk.engine, 200)
        uids = [dovecot.append(inquiry(n)) for n in range(3)]
        sink = BeforeBatch(desk, lock_at_first_write(desk.engine, write_lock))
        # 1st: the fast path gives up; 2nd: the careful pass's first message does.
        locked_errors(desk.engine, lambda n: write_lock.release() if n == 2 else None)

        try:
            imap_poller(dovecot, desk, sink).poll_once()
        except OperationalError:
            assert_untouched_on_server(dovecot, uids)  # failing is fine: nothing marked
        assert quarantined(desk) == []

        imap_poller(dovecot, desk).poll_once()

        assert_all_stored_once(desk, range(3))
        assert dovecot.messages() == {}
    finally:
        desk.close()


def test_sqlite_lock_taken_again_during_the_careful_pass_keeps_ticket_numbers_unique(
    dovecot: DovecotAccount, sqlite_url: str, tmp_path: Path, write_lock: WriteLock
) -> None:
    """Another writer takes the lock again between two messages of the careful pass.

    It can only if the careful pass is not one transaction; when it is, the
    writer finds the lock taken and the batch simply goes through.
    """
    desk = open_desk(sqlite_url, tmp_path)
    try:
        set_busy_timeout(desk.engine, 200)
        uids = [dovecot.append(inquiry(n)) for n in range(3)]
        sink = BeforeBatch(desk, lock_at_first_write(desk.engine, write_lock))
        # The fast path gives up, and the other writer lets go ...
        locked_errors(desk.engine, lambda n: write_lock.release() if n == 1 else None)
        tickets_written = [0]

        @event.listens_for(desk.engine, "before_cursor_execute")
        def _again(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            # ... and tries again as the careful pass writes the third ticket.
            if statement.lstrip().upper().startswith("INSERT INTO TICKETS "):
                tickets_written[0] += 1
                if tickets_written[0] == 3 and not write_lock.held:
                    write_lock.acquire(wait=0.5)

        try:
            imap_poller(dovecot, desk, sink).poll_once()
        except OperationalError:
            assert_untouched_on_server(dovecot, uids)
        write_lock.release()
        imap_poller(dovecot, desk).poll_once()
        dovecot.append(inquiry(3))
        imap_poller(dovecot, desk).poll_once()

        assert quarantined(desk) == []
        assert_all_stored_once(desk, range(4))
        assert len(set(ticket_numbers(desk))) == 4
        assert dovecot.messages() == {}
    finally:
        desk.close()


# -- (b) PostgreSQL restarted or the desk's backend terminated ---------------------


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL server of this module's own: these tests stop and restart it."""
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def pg_cluster_databases(pg_cluster: PostgresCluster) -> Iterator[PostgresDatabases]:
    dbs = PostgresDatabases(pg_cluster.admin_url)
    dbs.prepare_template()  # CREATE DATABASE, then madoguchi.ticketing.db.upgrade
    try:
        yield dbs
    finally:
        if not pg_cluster.running:
            pg_cluster.start()
        dbs.drop_all()


@pytest.fixture
def pg_desk(pg_cluster: PostgresCluster, pg_cluster_databases: PostgresDatabases,
            tmp_path: Path) -> Iterator[Desk]:
    if not pg_cluster.running:
        pg_cluster.start()
    desk = open_desk(pg_cluster_databases.new(), tmp_path)
    yield desk
    desk.close()


def at_insert(engine: Engine, table: str, action: Callable[[Any], None]) -> list[int]:
    """Run ``action(dbapi_connection)`` once, just before the first INSERT INTO ``table``.

    Returns a list that gets one entry when it has run.
    """
    fired: list[int] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _fire(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not fired and statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()} "):
            fired.append(1)
            action(conn.connection.dbapi_connection)

    return fired


@pytest.mark.postgres
def test_postgres_stopped_mid_batch_fails_the_poll_and_it_recovers_with_backoff(
    dovecot: DovecotAccount, pg_cluster: PostgresCluster, pg_desk: Desk,
    caplog: pytest.LogCaptureFixture,
) -> None:
    desk = pg_desk
    uids = [dovecot.append(inquiry(n)) for n in range(3)]
    # The batch has written its tickets (not committed): the server goes down.
    fired = at_insert(desk.engine, "messages", lambda _conn: pg_cluster.stop("fast"))
    observed: dict[str, object] = {}

    def after(failures: int) -> None:
        if failures == 1:
            # The failed poll marked nothing; the server is still down.
            assert not pg_cluster.running
            observed["inbox"] = dovecot.messages()
        elif failures == 2:
            pg_cluster.start()

    clock = Clock()
    daemon = Daemon(desk, pollers={SOURCE: imap_poller(dovecot, desk)},
                    backoff=source_backoff(desk, clock, base=1.0))
    with caplog.at_level(logging.WARNING, logger="madoguchi.ingest.backoff"):
        delays = run_poll_job(daemon, SOURCE, clock, after)

    assert fired == [1]
    assert sorted(observed["inbox"]) == uids  # type: ignore[call-overload]
    # Two failed polls (mid-batch, then connection refused), each followed by a
    # doubling wait; the first poll after the server is back stores everything.
    assert len(delays) == 2, delays
    assert 0.5 <= delays[0] <= 1.0
    assert 1.0 <= delays[1] <= 2.0
    # The database was down: the failures could not be written down, the
    # backoff went on from the daemon's memory.
    assert caplog.text.count("could not write the failure down") == 2
    assert failures_written_down(desk) == {}
    assert_all_stored_once(desk, range(3))
    assert open_claims(desk) == [] and owed_marks(desk) == []
    assert dovecot.messages() == {}
    assert len(dovecot.messages(PROCESSED)) == 3


@pytest.mark.postgres
def test_postgres_restarted_mid_batch_is_recovered_by_a_fresh_connection(
    dovecot: DovecotAccount, pg_cluster: PostgresCluster, pg_desk: Desk
) -> None:
    desk = pg_desk
    uids = [dovecot.append(inquiry(n)) for n in range(3)]
    pids: list[int] = []

    def restart(conn: Any) -> None:
        pids.append(conn.info.backend_pid)
        pg_cluster.restart("fast")  # returns once the server is up again

    fired = at_insert(desk.engine, "messages", restart)
    first = imap_poller(dovecot, desk)
    try:
        report = first.poll_once()
    except OperationalError:
        # Allowed: then nothing may be marked, and the next poll takes it all.
        assert_untouched_on_server(dovecot, uids)
        report = imap_poller(dovecot, desk).poll_once()

    assert fired == [1]
    assert report.quarantined == 0
    assert_all_stored_once(desk, range(3))
    assert dovecot.messages() == {}
    # The pool hands out a live connection again (pool_pre_ping), to a new backend.
    with desk.engine.connect() as conn:
        assert conn.connection.dbapi_connection.info.backend_pid not in pids  # type: ignore[union-attr]


@pytest.mark.postgres
def test_postgres_backend_terminated_mid_batch_loses_and_doubles_nothing(
    dovecot: DovecotAccount, pg_cluster: PostgresCluster, pg_desk: Desk
) -> None:
    desk = pg_desk
    uids = [dovecot.append(inquiry(n)) for n in range(4)]

    def terminate(conn: Any) -> None:
        pid = conn.info.backend_pid
        with psycopg.connect(f"{pg_cluster.admin_url}/postgres", autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
            deadline = time.monotonic() + 10
            while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                                [pid]).fetchone():
                assert time.monotonic() < deadline, "backend still alive"
                time.sleep(0.02)

    fired = at_insert(desk.engine, "messages", terminate)
    try:
        report = imap_poller(dovecot, desk).poll_once()
    except OperationalError:
        assert_untouched_on_server(dovecot, uids)
        report = imap_poller(dovecot, desk).poll_once()

    assert fired == [1]
    assert report.quarantined == 0
    assert_all_stored_once(desk, range(4))
    assert open_claims(desk) == [] and owed_marks(desk) == []
    assert dovecot.messages() == {}


# -- (c) disk full while the blob store writes ------------------------------------------

_INJECTED_ROOT = "MADOGUCHI_TEST_INJECTED_DISK"


class _InjectedDiskFile:
    """A file of the simulated disk: writing past its capacity fails with ENOSPC."""

    def __init__(self, handle: Any, name: str, root: Path) -> None:
        self._handle = handle
        self._name = name
        self._root = root

    def write(self, data: bytes) -> int:
        capacity = int(self._root.with_name(f"{self._root.name}.capacity").read_text())
        used = sum(p.stat().st_size for p in self._root.rglob("*") if p.is_file())
        if used + len(data) > capacity:
            raise OSError(errno.ENOSPC, "No space left on device (injected)", self._name)
        return int(self._handle.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> _InjectedDiskFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._handle.close()


def _injected_disk_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
    """``open`` for the blob store when the disk is simulated: ENOSPC past the capacity."""
    handle = open(file, mode, *args, **kwargs)  # noqa: SIM115 - returned to the caller
    if "w" not in mode:
        return handle
    return _InjectedDiskFile(handle, str(file), Path(os.environ[_INJECTED_ROOT]))


def _inject_disk(root: str) -> None:
    """Make this process's blob store see the simulated disk (also a worker initializer)."""
    from madoguchi.ticketing import blobstore

    os.environ[_INJECTED_ROOT] = root
    blobstore.open = _injected_disk_open  # type: ignore[attr-defined]


@dataclass
class SmallDisk:
    """The storage directory on a disk with little room, and how that was done."""

    root: Path
    how: str  # "tmpfs" (a real mount) or "injected"
    why: str

    def _available(self) -> int:
        if self.how == "tmpfs":
            st = os.statvfs(self.root)
            return st.f_bavail * st.f_frsize
        used = sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
        return self._capacity() - used

    def _capacity(self) -> int:
        return int(self.root.with_name(f"{self.root.name}.capacity").read_text())

    def leave_free(self, nbytes: int) -> None:
        """Fill the disk until about ``nbytes`` are left (whole 4 KiB pages)."""
        self.free_up()
        fill = max(0, self._available() - nbytes)
        if self.how == "tmpfs":
            with open(self.root / "filler", "wb") as fh:
                fh.write(b"\0" * (fill // 4096 * 4096))
        else:
            self.root.with_name(f"{self.root.name}.capacity").write_text(
                str(self._capacity() - fill))

    def free_up(self) -> None:
        if self.how == "tmpfs":
            (self.root / "filler").unlink(missing_ok=True)
        else:
            self.root.with_name(f"{self.root.name}.capacity").write_text(str(8 << 20))

    def prepare(self, desk: Desk) -> None:
        """Injected: the desk's worker processes must see the simulated disk too."""
        if self.how == "injected":
            preparer = desk.pipeline.preparer
            assert preparer._pool is None
            preparer._pool = ProcessPoolExecutor(
                preparer.workers or 1, mp_context=multiprocessing.get_context("forkserver"),
                initializer=_inject_disk, initargs=(str(self.root),),
            )


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               record_property: Callable[[str, object], None]) -> Iterator[SmallDisk]:
    """``tmp_path/storage`` on an 8 MiB tmpfs; ENOSPC injected if mounting is refused.

    A real full disk is preferred: the blob store meets the kernel's ENOSPC
    in whichever process writes. Only where this container may not mount
    (not root, no CAP_SYS_ADMIN) is the fault injected, into the blob
    store's ``open`` here and in the worker processes.
    """
    root = tmp_path / "storage"
    root.mkdir()
    forced = os.environ.get("MADOGUCHI_TEST_INJECT_ENOSPC") == "1"
    done = None if forced else subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(root)],
        capture_output=True, text=True, check=False,
    )
    if done is not None and done.returncode == 0:
        disk = SmallDisk(root, "tmpfs", "mounted an 8 MiB tmpfs as the storage_dir")
    else:
        why = ("MADOGUCHI_TEST_INJECT_ENOSPC=1" if done is None
               else f"mount refused: {done.stderr.strip() or done.returncode}")
        disk = SmallDisk(root, "injected", f"ENOSPC injected into the blob store ({why})")
        root.with_name("storage.capacity").write_text(str(8 << 20))
        monkeypatch.setenv(_INJECTED_ROOT, str(root))
        from madoguchi.ticketing import blobstore

        monkeypatch.setattr(blobstore, "open", _injected_disk_open, raising=False)
    print(f"disk-full fault: {disk.how}: {disk.why}")
    record_property("disk_full_path", f"{disk.how}: {disk.why}")
    try:
        yield disk
    finally:
        if disk.how == "tmpfs":
            subprocess.run(["umount", "-l", str(root)], check=False, capture_output=True)


def test_disk_full_fails_the_imap_poll_and_the_mail_stays_on_the_server(
    dovecot: DovecotAccount, sqlite_url: str, tmp_path: Path, small_disk: SmallDisk
) -> None:
    # A small batch is prepared in the main process (below POOL_THRESHOLD).
    desk = open_desk(sqlite_url, tmp_path)
    small_disk.prepare(desk)
    try:
        uids = [dovecot.append(inquiry(n)) for n in range(3)]
        small_disk.leave_free(0)

        with pytest.raises(Exception) as failed:  # its type: the next test
            imap_poller(dovecot, desk).poll_once()

        assert any(isinstance(e, OSError) and e.errno == errno.ENOSPC
                   for e in error_chain(failed.value)), repr(failed.value)
        assert stored_ids(desk) == [] and quarantined(desk) == []
        assert_untouched_on_server(dovecot, uids)

        small_disk.free_up()
        report = imap_poller(dovecot, desk).poll_once()

        assert (report.created, report.quarantined, report.marked) == (3, 0, 3)
        assert_all_stored_once(desk, range(3))
        assert dovecot.messages() == {}
    finally:
        desk.close()


def test_disk_full_poll_error_says_the_storage_is_full(
    sqlite_url: str, tmp_path: Path, small_disk: SmallDisk
) -> None:
    desk = open_desk(sqlite_url, tmp_path)
    small_disk.prepare(desk)
    try:
        box = tmp_path / "Maildir"
        poller = MaildirPoller(MaildirSource(kind="maildir", name="box", path=box),
                               desk.pipeline)
        (box / "new" / "1700000000.M1.desk").write_bytes(inquiry(1))
        small_disk.leave_free(0)

        with pytest.raises(StorageUnavailableError, match=r"No space left on device"):
            poller.poll_once()
        assert len(list((box / "new").iterdir())) == 1
    finally:
        desk.close()


def test_disk_full_for_an_attachment_in_a_worker_is_not_quarantined(
    dovecot: DovecotAccount, sqlite_url: str, tmp_path: Path, small_disk: SmallDisk
) -> None:
    # A FAX gateway is configured, so every mail is prepared in a worker process.
    desk = open_desk(sqlite_url, tmp_path, fax={"gateway_addresses": ["fax@gw.example.jp"]})
    small_disk.prepare(desk)
    try:
        manual = random.Random(3).randbytes(300_000)
        big = inquiry(1, attachments=[("操作マニュアル.pdf", "application/pdf", manual)])
        uids = [dovecot.append(inquiry(0)), dovecot.append(big), dovecot.append(inquiry(2))]
        # Room for the raw mail, not for its attachment stored beside it.
        small_disk.leave_free(len(big) + 64 * 1024)

        with pytest.raises(StorageUnavailableError):
            imap_poller(dovecot, desk).poll_once()

        assert quarantined(desk) == []
        assert stored_ids(desk) == []
        assert_untouched_on_server(dovecot, uids)

        small_disk.free_up()
        report = imap_poller(dovecot, desk).poll_once()

        assert (report.created, report.quarantined) == (3, 0)
        assert_all_stored_once(desk, range(3))
        with desk.factory() as session:
            (message,) = session.scalars(select(Message).where(
                Message.message_id == "fault-1@mail.customer.example.co.jp"))
            assert [a.size for a in message.attachments] == [len(manual)]
        assert dovecot.messages() == {}
    finally:
        desk.close()


def test_disk_full_for_a_fax_page_leaves_the_fax_in_the_spool(
    sqlite_url: str, tmp_path: Path, small_disk: SmallDisk
) -> None:
    desk = open_desk(sqlite_url, tmp_path)
    small_disk.prepare(desk)
    try:
        spool = tmp_path / "spool"
        spool.mkdir()
        fax = send_fax(letter_pdf(["サポートサービス番号：2031-0001-0008",
                                   "ライセンスキーの再発行をお願いします。"]),
                       spool / "fax0001.tif", resolution="standard")
        raw_size = fax.stat().st_size
        poller = FaxSpoolPoller(FaxSpoolSource(kind="fax_spool", name="fax", path=spool,
                                               stable_seconds=0), desk.pipeline)
        # Room for the original file, not for the page image read from it.
        small_disk.leave_free(raw_size + 8 * 1024)

        with pytest.raises(StorageUnavailableError):
            poller.poll_once()

        assert quarantined(desk) == []
        assert fax.exists()
        assert list((spool / "failed").iterdir()) == []

        small_disk.free_up()
        report = poller.poll_once()

        assert (report.taken, report.created, report.quarantined) == (1, 1, 0)
        assert (spool / "done" / "fax0001.tif").exists()
        with desk.factory() as session:
            (message,) = session.scalars(select(Message))
            assert len(message.attachments) == 2  # the original and its page image
    finally:
        desk.close()


# -- (d) IMAP server stopped and restarted mid-batch ------------------------------------


@pytest.mark.parametrize(
    ("batch_size", "seen_at_failure"),
    [
        # One batch of 5: committed after the server went; all 5 moves owed.
        (5, {"tickets": 5, "owed": [1, 2, 3, 4, 5]}),
        # Batches 2+2+1, the server goes while batch 2 is stored: batch 2 is
        # committed and its moves owed; batch 3 was already fetched (the poller
        # fetches the next claim while it stores one) and holds its claim lock.
        (2, {"tickets": 4, "owed": [3, 4]}),
    ],
    ids=["one-batch", "next-batch-prefetched"],
)
def test_imap_server_stopped_mid_batch_is_retried_with_backoff_until_it_is_back(
    dovecot: DovecotAccount, sqlite_url: str, tmp_path: Path, batch_size: int,
    seen_at_failure: dict[str, object],
) -> None:
    """Dovecot goes down while a batch is stored, and comes back two failed polls later.

    (test_imap.py drops the connection mid-batch with ``doveadm kick``, and
    starts a poll with the server down; here the server goes away mid-batch
    and the daemon's poll job, with its backoff, has to carry on.)
    """
    desk = open_desk(sqlite_url, tmp_path)
    try:
        uids = [dovecot.append(inquiry(n)) for n in range(5)]
        assert uids == [1, 2, 3, 4, 5]
        server = dovecot.server
        stop_at = 1 if batch_size >= 5 else 2
        looked_ahead = [threading.Event() for _ in range(4)]

        def stop_server(batch: int) -> None:
            if batch == stop_at:
                # The look-ahead for the next claim is done (deterministic order).
                assert looked_ahead[stop_at].wait(10)
                # A stopping Dovecot ends its clients' sessions (a bare SIGTERM to
                # the master leaves running imap processes serving them a while).
                dovecot.kick()
                server.stop()

        seen: dict[str, object] = {}

        def after(failures: int) -> None:
            if failures == 1:
                seen["tickets"] = count(desk, Ticket)
                seen["owed"] = owed_marks(desk)
            if failures == 2:
                server.start()

        poller = ImapPoller(imap_source(dovecot), BeforeBatch(desk, stop_server),
                            desk.factory, batch_size)
        next_claim = poller._next_claim
        calls = [0]

        def traced_next_claim(mailbox: Any) -> Any:
            try:
                return next_claim(mailbox)
            finally:
                calls[0] += 1
                looked_ahead[min(calls[0] - 1, 3)].set()

        poller._next_claim = traced_next_claim  # type: ignore[method-assign]
        clock = Clock()
        daemon = Daemon(desk, pollers={SOURCE: poller}, backoff=source_backoff(desk, clock))
        delays = run_poll_job(daemon, SOURCE, clock, after)

        assert seen == seen_at_failure
        assert len(delays) == 2, delays
        assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0
        assert failures_written_down(desk) == {}
        assert_all_stored_once(desk, range(5))
        assert open_claims(desk) == [] and owed_marks(desk) == []
        assert dovecot.messages() == {}
        assert len(dovecot.messages(PROCESSED)) == 5
    finally:
        desk.close()
