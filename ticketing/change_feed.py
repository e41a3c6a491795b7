"""The desk's change feed: which tickets changed, told to every web process.

Writers say nothing themselves: ``track`` listens to the sessions of a
``sessionmaker`` and notes every ticket whose row, messages or flags a flush
wrote (a desk action, triage, the daemon), and the ingest notes the tickets
of the rows it inserts with Core statements (``note``). At commit the
tickets noted are announced through the database, in the same transaction
(a rolled-back change announces nothing):

- PostgreSQL: ``NOTIFY madoguchi_desk`` with the ticket ids; each web process
  LISTENs on one connection of its own;
- SQLite: a row per ticket in ``ticket_changes``; each web process polls the
  table's primary key past the last row it saw (one indexed read every
  ``poll_seconds``; SQLite has one writer, so ids are committed in order),
  and prunes rows older than ``KEEP``.

Either way it is one listener per process, whatever the number of browsers
(``web.live`` fans the changes out to them). Presence changes travel the
same way with their own kind (``ticketing.presence`` notes them), so that a
viewer coming or going is not taken for a change of the ticket.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import Engine, delete, event, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from madoguchi.ticketing.live_models import TicketChange
from madoguchi.ticketing.models import Message, OutboxMessage, Ticket, TicketFlag, table_of

log = logging.getLogger("madoguchi.changes")

TICKET = "ticket"
PRESENCE = "presence"
CHANNEL = "madoguchi_desk"
KEEP = timedelta(minutes=5)  # SQLite: rows older than this are pruned
_NOTED = "madoguchi_changes"
_PAYLOAD_IDS = 400  # ids per NOTIFY (its payload is at most 8000 bytes)


@dataclass(frozen=True)
class Change:
    """``ticket_id`` 0: anything may have changed (the listener reconnected)."""

    kind: str
    ticket_id: int


ANYTHING = Change(TICKET, 0)


def note(session: Session, ticket_ids: Iterable[int | None], kind: str = TICKET) -> None:
    """Announce these tickets when ``session`` commits."""
    noted: set[Change] = session.info.setdefault(_NOTED, set())
    noted.update(Change(kind, i) for i in ticket_ids if i)


def _ticket_of(obj: object) -> int | None:
    if isinstance(obj, Ticket):
        return obj.id
    if isinstance(obj, Message | TicketFlag | OutboxMessage):
        return obj.ticket_id
    return None


def _after_flush(session: Session, _context: Any) -> None:
    note(session, (_ticket_of(o) for o in (*session.new, *session.dirty, *session.deleted)))


def _before_commit(session: Session) -> None:
    session.flush()  # the commit's own flush comes after this hook: note what it writes
    noted: set[Change] = session.info.pop(_NOTED, set())
    if noted:
        from madoguchi.ticketing.dialect import dialect_of

        dialect_of(session).announce_changes(session, sorted(noted, key=_order))


def _forget(session: Session) -> None:
    session.info.pop(_NOTED, None)


def _order(change: Change) -> tuple[str, int]:
    return change.kind, change.ticket_id


def track(factory: sessionmaker[Session]) -> None:
    """Announce, at each commit of ``factory``'s sessions, the tickets they changed."""
    event.listen(factory, "after_flush", _after_flush)
    event.listen(factory, "before_commit", _before_commit)
    event.listen(factory, "after_rollback", _forget)


# -- announcing: one per dialect ------------------------------------------------


def insert_changes(session: Session, changes: list[Change]) -> None:
    now = datetime.now(UTC)
    session.execute(insert(table_of(TicketChange)), [
        {"ticket_id": c.ticket_id, "kind": c.kind, "changed_at": now} for c in changes
    ])


def notify_changes(session: Session, changes: list[Change]) -> None:
    for kind in sorted({c.kind for c in changes}):
        ids = [str(c.ticket_id) for c in changes if c.kind == kind]
        for start in range(0, len(ids), _PAYLOAD_IDS):
            payload = f"{kind}:{','.join(ids[start:start + _PAYLOAD_IDS])}"
            session.execute(text("SELECT pg_notify(:channel, :payload)"),
                            {"channel": CHANNEL, "payload": payload})


# -- listening: one per web process ----------------------------------------------


class ChangeListener(ABC):
    @abstractmethod
    def wait(self, timeout: float) -> list[Change]:
        """The changes committed since the last call, waiting up to ``timeout`` for one."""

    def close(self) -> None:  # noqa: B027 - nothing to close by default
        pass


class PolledChanges(ChangeListener):
    """SQLite: the rows of ``ticket_changes`` past the last one seen."""

    def __init__(self, engine: Engine, poll_seconds: float) -> None:
        self.engine, self.poll = engine, poll_seconds
        self._pruned = time.monotonic()
        with engine.connect() as conn:
            self.last = conn.scalar(select(TicketChange.id).order_by(TicketChange.id.desc())
                                    .limit(1)) or 0

    def wait(self, timeout: float) -> list[Change]:
        deadline = time.monotonic() + timeout
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(select(TicketChange.id, TicketChange.kind,
                                           TicketChange.ticket_id)
                                    .where(TicketChange.id > self.last)
                                    .order_by(TicketChange.id).limit(5000)).all()
            if rows:
                self.last = rows[-1][0]
                return [Change(kind, ticket_id) for _id, kind, ticket_id in rows]
            self._prune()
            if time.monotonic() + self.poll > deadline:
                return []
            time.sleep(self.poll)

    def _prune(self) -> None:
        if time.monotonic() - self._pruned < 60:
            return
        self._pruned = time.monotonic()
        with self.engine.begin() as conn:
            conn.execute(delete(TicketChange)
                         .where(TicketChange.changed_at < datetime.now(UTC) - KEEP))


class NotifiedChanges(ChangeListener):
    """PostgreSQL: LISTEN on a connection of its own (not the pool's)."""

    def __init__(self, engine: Engine) -> None:
        url = engine.url.set(drivername="postgresql")
        self.conninfo = url.render_as_string(hide_password=False)
        self.conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self._listened = False

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.conninfo, autocommit=True)
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def wait(self, timeout: float) -> list[Change]:
        with self._lock:
            if self.conn is None or self.conn.closed:
                self.conn = self._connect()
                if self._listened:
                    # What was committed while no one listened is unknown: say so.
                    return [ANYTHING]
                self._listened = True
            conn = self.conn
        changes: list[Change] = []
        for n in conn.notifies(timeout=timeout, stop_after=1):
            changes.extend(_parse(n.payload))
        if changes:  # a burst: take what else is there at once
            for n in conn.notifies(timeout=0.01):
                changes.extend(_parse(n.payload))
        return changes

    def close(self) -> None:
        with self._lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None


def _parse(payload: str) -> list[Change]:
    kind, _, ids = payload.partition(":")
    return [Change(kind, int(i)) for i in ids.split(",") if i.isdigit()]
