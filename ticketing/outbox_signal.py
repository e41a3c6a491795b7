"""Word that outbox rows were queued, so the leader's sender starts a round at once.

Only the leader sends (``madoguchi.daemon``), but on PostgreSQL every
daemon polls the shared IMAP sources, and the web desk queues replies: the
acknowledgements a standby queued used to wait for the leader's next
scheduled round (``daemon.outbox_interval_seconds``). Now the transaction
that queues rows (``outbox.insert_outbox``) also sends ``NOTIFY
madoguchi_outbox`` (delivered at its commit, never after a rollback), and
the leader LISTENs on a connection of its own (``OutboxListener``;
``madoguchi.outbox_wake`` runs the round).

SQLite has no such word, and other processes (the web desk, ``madoguchi
ingest``) write the same file: the leader looks at the outbox instead
(``due_ids``, a read of the due rows by their index, twice a second), as
it does on PostgreSQL too after each wait, for a row whose retry came due
and for a notification lost while the listener reconnected.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from madoguchi.ticketing.models import OutboxMessage, OutboxStatus

CHANNEL = "madoguchi_outbox"
# The most due rows one look reads (the ids of a burst; more wait for the next round).
LOOK_LIMIT = 500
# A round takes these when due: pending ones, and those whose sender's lease is over.
_TAKEN = (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.DELIVERING)


def notify_queued(session: Session) -> None:
    """PostgreSQL: tell the listeners, when this transaction commits, that rows were queued."""
    # One NOTIFY per transaction reaches the listeners (same channel, same payload).
    session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class OutboxListener:
    """PostgreSQL: LISTEN madoguchi_outbox on a connection of its own (not the pool's)."""

    def __init__(self, engine: Engine) -> None:
        url = engine.url.set(drivername="postgresql")
        self.conninfo = url.render_as_string(hide_password=False)
        self.conn: psycopg.Connection[Any] | None = None

    def wait(self, timeout: float) -> bool:
        """Whether rows were queued (or may have been: just (re)connected), waiting ``timeout``.

        Raises what the connection raises; the next call connects again.
        """
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.conninfo, autocommit=True)
            self.conn.execute(f"LISTEN {CHANNEL}")
            return True  # what was queued while nobody listened is unknown: look
        try:
            notified = any(True for _ in self.conn.notifies(timeout=timeout, stop_after=1))
            if notified:  # a burst: one round for all of it
                for _ in self.conn.notifies(timeout=0.01):
                    pass
        except BaseException:
            self.close()
            raise
        return notified

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def due_ids(session: Session, now: datetime, limit: int = LOOK_LIMIT) -> set[int]:
    """The rows a round would take now: pending and due, or a sender's lease over.

    One read along the index ``ix_outbox_status_next``: the leader's look for
    mail queued without word (``madoguchi.outbox_wake``).
    """
    return set(session.scalars(
        select(OutboxMessage.id)
        .where(OutboxMessage.status.in_(_TAKEN), OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.id)
        .limit(limit)))
