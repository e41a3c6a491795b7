"""Word that outbox rows were queued, so the leader's sender starts a round at once.

Only the leader sends (``madoguchi.daemon``), but on PostgreSQL every
daemon polls the shared IMAP sources, and the web desk queues replies: the
acknowledgements a standby queued used to wait for the leader's next
scheduled round (``daemon.outbox_interval_seconds``). Now the transaction
that queues rows (``outbox.insert_outbox``) also sends ``NOTIFY
madoguchi_outbox`` (delivered at its commit, never after a rollback), and
the leader LISTENs on a connection of its own (``OutboxListener``;
``madoguchi.outbox_wake`` runs the round).

SQLite has no such word: the leader alone polls there and runs a round
after each poll IDLE asked for; the scheduled round is the fallback, as it
is for a notification lost while the listener reconnects.
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

CHANNEL = "madoguchi_outbox"


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
