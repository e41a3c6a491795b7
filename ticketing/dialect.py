"""What SQLite and PostgreSQL do differently, in one place, chosen once per database.

Everything else is written once for both. The differences are few and
deliberate:

- **Writers.** SQLite has one writer at a time; PostgreSQL lets several
  daemons store batches at once (``concurrent_writers``): they then share the
  IMAP mail claim by claim, and take ticket numbers outside their batches'
  transactions so as not to wait for each other.
- **Connections.** SQLite's pragmas (WAL, busy timeout, foreign keys) and a
  real BEGIN before a savepoint; PostgreSQL's pre-ping.
- **Locks that die with their holder** (the scheduler's leadership, IMAP
  claims): PostgreSQL advisory locks on a connection of their own; for
  SQLite, locks on files beside the database.
- **Statements**: INSERT that skips rows whose unique key exists, the word
  search (FTS5 trigram index, or pg_trgm and a bigram GIN), a commit that need not wait for
  the disk.
- **The change feed** (``ticketing.change_feed``): NOTIFY/LISTEN, or a
  table polled by its primary key; word of queued mail for the leader's
  sender (``ticketing.outbox_signal``): NOTIFY/LISTEN, or none.
- **Copies** for backups: SQLite's online backup API, ``pg_dump``/``pg_restore``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import TextClause

from madoguchi.ticketing import change_feed, outbox_signal
from madoguchi.ticketing._exec import pg
from madoguchi.ticketing.locks import (
    AdvisoryLock,
    AdvisoryLocks,
    ExclusiveLock,
    FileLock,
    FileRecordLocks,
    KeyedLocks,
    ProcessLocks,
)
from madoguchi.ticketing.models import Message
from madoguchi.ticketing.outbox_signal import OutboxListener
from madoguchi.ticketing.rules.search_text import indexed_by_bigrams


class BackupError(Exception):
    """A backup or restore that cannot be made; the message says why."""


class Dialect(ABC):
    name: ClassVar[str]
    label: ClassVar[str]  # as people write it
    # Several processes may write at once: see the module's docstring.
    concurrent_writers: ClassVar[bool]
    # Each statement reads what was committed when it started (not the transaction's
    # first snapshot): what web.count_cache needs to keep a count.
    snapshot_per_statement: ClassVar[bool]

    @abstractmethod
    def make_engine(self, url: URL) -> Engine: ...

    @abstractmethod
    def _insert(self, table: Table) -> Any:
        """The dialect's own INSERT construct, which has ON CONFLICT DO NOTHING."""

    def insert_skipping_conflicts(
        self, table: Table, rows: Sequence[Mapping[str, Any]], unique: Sequence[str]
    ) -> Insert:
        """INSERT of ``rows`` that skips those whose ``unique`` columns exist (no error)."""
        stmt: Insert = self._insert(table).values(list(rows)).on_conflict_do_nothing(
            index_elements=list(unique)
        )
        return stmt

    @abstractmethod
    def without_waiting_for_disk(self, session: Session) -> None:
        """The rest of this transaction may commit before its log reaches the disk.

        For short transactions whose loss in a server crash is harmless
        because a later, durable commit that depends on them flushes them too.
        """

    @abstractmethod
    def leader_lock(self, engine: Engine, key: int) -> ExclusiveLock:
        """A lock one process of all that share this database holds at a time."""

    @abstractmethod
    def keyed_locks(self, engine: Engine, namespace: str, key_class: int) -> KeyedLocks:
        """Locks on numbered things (claims), each held by one process at a time."""

    @abstractmethod
    def prefer_index_scans(self, session: Session) -> None:
        """This transaction's queries fetch few rows through indexes: plan them so."""

    # How many of the newest messages a search reads first to judge how often its terms
    # occur, before it says how the rest are read (``read_messages``); 0: it does not.
    frequency_window: ClassVar[int] = 0

    def read_messages(self, session: Session, how: str) -> None:  # noqa: B027 - SQLite: none
        """How this transaction's next statements read messages for a search: ``newest``
        (along the primary key, newest first: terms found often), ``indexed`` (through
        the text indexes: rare terms) or ``chosen`` (as the planner chooses)."""

    @abstractmethod
    def text_contains(self, terms: Sequence[str], *,
                      newest: bool = False) -> ColumnElement[bool]:
        """Messages whose folded ``search_text`` contains every (folded) term.

        The indexes are migration 0014's: FTS5 trigram on SQLite; pg_trgm and
        the bigram GIN on PostgreSQL. ``newest``: for messages read newest first
        (``read_messages``), where a condition only an index needs costs a call per row.
        """

    @abstractmethod
    def announce_changes(self, session: Session, changes: list[change_feed.Change]) -> None:
        """Tell every web process, when this transaction commits, what it changed."""

    @abstractmethod
    def change_listener(self, engine: Engine, poll_seconds: float) -> change_feed.ChangeListener:
        """What a web process listens to for the changes others announce."""

    def announce_queued_mail(self, session: Session) -> None:  # noqa: B027 - SQLite: none
        """Tell the leader's sender, when this transaction commits, that outbox rows were queued."""

    def outbox_listener(self, engine: Engine) -> OutboxListener | None:
        """What the leader listens to for ``announce_queued_mail``; None: the dialect has none."""
        return None

    @abstractmethod
    def copy_database(self, url: str, dest: Path) -> None:
        """A consistent copy of the database into the folder ``dest``, while it is in use."""

    @abstractmethod
    def restore_database(self, url: str, src: Path) -> None:
        """The database replaced by the copy in ``src`` (nobody else using it)."""


class SqliteDialect(Dialect):
    name = "sqlite"
    label = "SQLite"
    concurrent_writers = False
    snapshot_per_statement = False  # a read transaction keeps its first snapshot (WAL)
    COPY = "database.sqlite3"

    def make_engine(self, url: URL) -> Engine:
        if url.database and url.database != ":memory:":
            path = Path(url.database)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Customers' data: the file is the desk user's alone (SQLite gives
            # its -wal and -shm files the same mode), whatever the umask.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets the web desk read while a poller writes; NORMAL sync is
            # durable across process crashes (only an OS crash may lose the
            # last commit, never corrupt the file).
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "savepoint")
        def _sqlite_begin_before_savepoint(conn: Connection, _name: Any) -> None:
            # pysqlite begins a transaction only before INSERT/UPDATE/DELETE: a
            # SAVEPOINT issued first would begin one itself, and its RELEASE would
            # commit it (the careful pass would commit message by message). Begin
            # for real; IMMEDIATE, as a savepoint is there to write.
            dbapi = conn.connection.dbapi_connection
            if dbapi is not None and not dbapi.in_transaction:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    def _insert(self, table: Table) -> Any:
        return sqlite.insert(table)

    def without_waiting_for_disk(self, session: Session) -> None:
        pass  # one writer, and NORMAL sync already: nothing to relax

    def prefer_index_scans(self, session: Session) -> None:
        pass  # SQLite's planner has no parallel workers to hold back

    def text_contains(self, terms: Sequence[str], *,
                      newest: bool = False) -> ColumnElement[bool]:
        # The trigram index answers terms of three characters or more; a shorter
        # term has no trigram and is checked with LIKE on the rows found (or, if
        # every term is short, on the messages read newest first: see README for
        # what that costs at a desk's sizes).
        long_terms = [t for t in terms if len(t) >= 3]
        likes = [_contains(t) for t in terms if len(t) < 3]
        if long_terms:
            match = " AND ".join('"' + t.replace('"', '""') + '"' for t in long_terms)
            likes.insert(0, Message.id.in_(
                select(text("rowid")).select_from(text("messages_fts"))
                .where(text("messages_fts MATCH :fts_match").bindparams(fts_match=match))))
        return and_(*likes)

    def announce_changes(self, session: Session, changes: list[change_feed.Change]) -> None:
        change_feed.insert_changes(session, changes)

    def change_listener(self, engine: Engine, poll_seconds: float) -> change_feed.ChangeListener:
        return change_feed.PolledChanges(engine, poll_seconds)

    def copy_database(self, url: str, dest: Path) -> None:
        # The online backup API: a consistent snapshot while the daemon writes.
        _sqlite_copy(str(make_url(url).database), str(dest / self.COPY))

    def restore_database(self, url: str, src: Path) -> None:
        _sqlite_copy(str(src / self.COPY), str(make_url(url).database))

    def _beside(self, engine: Engine, suffix: str) -> Path | None:
        database = engine.url.database
        if not database or database == ":memory:":
            return None  # a database only this process sees
        return Path(f"{database}.{suffix}.lock")

    def leader_lock(self, engine: Engine, key: int) -> ExclusiveLock:
        path = self._beside(engine, "scheduler")
        return FileLock(path) if path is not None else ProcessLocks().single(key)

    def keyed_locks(self, engine: Engine, namespace: str, key_class: int) -> KeyedLocks:
        path = self._beside(engine, namespace)
        return FileRecordLocks(path) if path is not None else ProcessLocks()


class PostgresDialect(Dialect):
    name = "postgresql"
    label = "PostgreSQL"
    concurrent_writers = True
    snapshot_per_statement = True  # READ COMMITTED
    COPY = "database.dump"

    def make_engine(self, url: URL) -> Engine:
        return create_engine(url, pool_pre_ping=True)

    def _insert(self, table: Table) -> Any:
        return postgresql.insert(table)

    def without_waiting_for_disk(self, session: Session) -> None:
        session.execute(text("SET LOCAL synchronous_commit = off"))

    def leader_lock(self, engine: Engine, key: int) -> ExclusiveLock:
        return AdvisoryLock(engine, key)

    def keyed_locks(self, engine: Engine, namespace: str, key_class: int) -> KeyedLocks:
        return AdvisoryLocks(engine, key_class)

    def prefer_index_scans(self, session: Session) -> None:
        # A page is a few dozen rows found through an index: starting parallel
        # workers would cost more (tens of milliseconds) than the scan they share,
        # and so would compiling a plan the planner misjudged as large (JIT: 200 ms
        # seen on a filtered search of 1 M tickets). One statement for both.
        session.execute(text("SELECT set_config('max_parallel_workers_per_gather', '0', true), "
                             "set_config('jit', 'off', true)"))

    # PostgreSQL guesses a term's frequency from the column's statistics, which for long
    # text are poor: a phrase in one message in 2,000 was estimated at one in 500 after
    # one ANALYZE and one in 10,000 after the next; at one in 500 it walked the primary
    # key (400,000 rows, 0.9 s) instead of the trigram index (7 ms). The search counts
    # the term in the newest messages itself and says which plan (search.py).
    frequency_window = 2000

    def read_messages(self, session: Session, how: str) -> None:
        off = {"newest": ("enable_bitmapscan",),
               "indexed": ("enable_indexscan", "enable_seqscan")}.get(how, ())
        settings = ", ".join(
            f"set_config('{name}', '{'off' if name in off else 'on'}', true)"
            for name in ("enable_bitmapscan", "enable_indexscan", "enable_seqscan"))
        session.execute(text(f"SELECT {settings}"))

    def text_contains(self, terms: Sequence[str], *,
                      newest: bool = False) -> ColumnElement[bool]:
        # LIKE '%term%' is what the pg_trgm GIN answers (the text is folded, so no
        # ILIKE); a two-character term has no trigram and is narrowed by the bigram
        # GIN, whose expression is written exactly as the index's (and left out of a
        # read along the primary key: computing a message's bigrams costs more than LIKE).
        conditions: list[ColumnElement[bool] | TextClause] = []
        for i, t in enumerate(terms):
            if indexed_by_bigrams(t) and not newest:
                conditions.append(text(
                    f"madoguchi_bigrams(messages.search_text) @> ARRAY[:bigram{i}]::text[]"
                ).bindparams(**{f"bigram{i}": t}))
            conditions.append(_contains(t))
        return and_(*conditions)

    def announce_changes(self, session: Session, changes: list[change_feed.Change]) -> None:
        change_feed.notify_changes(session, changes)

    def change_listener(self, engine: Engine, poll_seconds: float) -> change_feed.ChangeListener:
        return change_feed.NotifiedChanges(engine)

    def announce_queued_mail(self, session: Session) -> None:
        outbox_signal.notify_queued(session)

    def outbox_listener(self, engine: Engine) -> OutboxListener | None:
        return OutboxListener(engine)

    def copy_database(self, url: str, dest: Path) -> None:
        _pg_tool(pg.dump, url, dest / self.COPY)

    def restore_database(self, url: str, src: Path) -> None:
        _pg_tool(pg.restore, url, src / self.COPY)


def _contains(term: str) -> ColumnElement[bool]:
    return Message.search_text.like(like_pattern(term), escape="\\")


def like_pattern(term: str) -> str:
    """A LIKE pattern for "contains ``term``", its wildcards escaped with a backslash."""
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _pg_tool(run: Callable[[str, Path], None], url: str, file: Path) -> None:
    try:
        run(url, file)
    except pg.PostgresToolError as exc:
        raise BackupError(str(exc)) from exc


def _sqlite_copy(source_path: str, target_path: str) -> None:
    source, target = sqlite3.connect(source_path), sqlite3.connect(target_path)
    try:
        with target:
            source.backup(target)
    finally:
        source.close()
        target.close()


_DIALECTS: dict[str, Dialect] = {d.name: d for d in (SqliteDialect(), PostgresDialect())}


def dialect_named(name: str) -> Dialect:
    """The strategy for "sqlite" or "postgresql"."""
    try:
        return _DIALECTS[name]
    except KeyError:
        raise ValueError(f"unsupported database {name!r}: use SQLite or PostgreSQL") from None


def dialect_of(where: Engine | Connection | Session | URL | str) -> Dialect:
    """The strategy for a database, by its URL or anything bound to it."""
    if isinstance(where, Session):
        return dialect_named(where.get_bind().dialect.name)
    if isinstance(where, Engine | Connection):
        return dialect_named(where.dialect.name)
    return dialect_named(make_url(where).get_backend_name())
