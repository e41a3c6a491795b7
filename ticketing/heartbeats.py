"""Each daemon's components beating, in the database: written by the daemon, read by status.

A daemon (``host:pid``) writes one row per component every few seconds
(``madoguchi.supervision``): when it last beat, what it is doing, and when
it counts as LATE without a newer beat (``late_at``, the component's own
allowance). ``madoguchi status`` and /metrics read them from any process.
A daemon that stops cleanly deletes its rows; those of a daemon that died
stay, LATE, until a daemon on the same host starts (it forgets the rows of
processes of its host that are gone) or, elsewhere, for ``FORGET_AFTER``.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, inspect, select
from sqlalchemy.orm import Session

from madoguchi.ticketing.models import Heartbeat

TABLE = "daemon_heartbeats"  # migration 0005; read only where it exists
FORGET_AFTER = timedelta(days=1)
DETAIL_CHARS = 300


@dataclass(frozen=True)
class Beat:
    daemon: str  # host:pid
    component: str  # scheduler, lease, outbox, poll:<source>, workers, ...
    state: str  # leading, standby, idle, running, failing, ...
    detail: str
    beat_at: datetime
    late_at: datetime

    def late(self, now: datetime) -> bool:
        return now > self.late_at


def this_daemon() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def write_beats(session: Session, daemon: str, beats: list[Beat]) -> None:
    """Replace ``daemon``'s rows by ``beats``, in the caller's transaction."""
    session.execute(delete(Heartbeat).where(Heartbeat.daemon == daemon))
    session.add_all(Heartbeat(daemon=daemon, component=b.component, state=b.state[:40],
                              detail=b.detail[:DETAIL_CHARS], beat_at=b.beat_at,
                              late_at=b.late_at) for b in beats)


def forget(session: Session, daemon: str) -> None:
    session.execute(delete(Heartbeat).where(Heartbeat.daemon == daemon))


def forget_the_dead(session: Session, now: datetime) -> None:
    """Drop rows of gone processes of this host, and rows nobody renewed for a day."""
    host = socket.gethostname()
    for daemon in set(session.scalars(select(Heartbeat.daemon))):
        name, _, pid = daemon.rpartition(":")
        if name == host and pid.isdigit() and not _alive(int(pid)):
            forget(session, daemon)
    session.execute(delete(Heartbeat).where(Heartbeat.beat_at < now - FORGET_AFTER))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_beats(session: Session) -> list[Beat]:
    """Every daemon's components, by daemon then component (none before migration 0005)."""
    if not inspect(session.connection()).has_table(TABLE):
        return []
    return [Beat(h.daemon, h.component, h.state, h.detail, h.beat_at, h.late_at)
            for h in session.scalars(select(Heartbeat)
                                     .order_by(Heartbeat.daemon, Heartbeat.component))]
