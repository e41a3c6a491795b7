"""The leader's lease: a lock that dies with its holder, and an epoch that fences it.

One daemon per database schedules. It leads while it holds the leader lock
(``ticketing.locks``: a PostgreSQL advisory lock on a connection of its own,
an ``flock`` beside a SQLite database); taking the lock raises the epoch of
the one ``daemon_leader`` row, in the same breath, and that epoch is the
leader's fencing token:

- every scheduled job, and every outbox claim, checks in its own
  transaction that the row still carries its epoch (``fence``) before it
  acts; on PostgreSQL the check reads the row ``FOR SHARE``, so it cannot
  pass while a new leader is raising the epoch, nor after;
- the lease is renewed on a short interval (``renew``): the lock is asked
  for on its own connection (a terminated or unreachable connection means
  the lock is gone), and the row's ``renewed_at`` is moved on where the
  epoch is still ours. A lock gone, or another epoch in the row, ends the
  lease at once; the daemon then stops scheduling.
- a daemon that lost its lease takes it again only as anyone does: when
  nobody else holds the lock (a new, higher epoch).

A database that cannot be written (SQLite locked by another writer) does
not end a lease whose lock is held: the renewal is simply not written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.dialect import dialect_of
from madoguchi.ticketing.locks import ExclusiveLock
from madoguchi.ticketing.models import DaemonLeader, table_of

log = logging.getLogger("madoguchi.leadership")

ROW_ID = 1


class LeadershipLost(Exception):
    """The epoch this work was started under is no longer the leader's."""

    def __init__(self, epoch: int | None, current: int | None) -> None:
        super().__init__(f"epoch {epoch} no longer leads (the leader's epoch is {current})")
        self.epoch = epoch
        self.current = current


def current_epoch(session: Session, *, share: bool = False) -> int | None:
    """The leader row's epoch (None: no row); ``share`` holds it until the transaction ends."""
    query = select(DaemonLeader.epoch).where(DaemonLeader.id == ROW_ID)
    if share:
        query = query.with_for_update(read=True)  # FOR SHARE on PostgreSQL
    return session.scalar(query)


def fence(session: Session, epoch: int | None) -> None:
    """Raise ``LeadershipLost`` unless ``epoch`` leads, in ``session``'s transaction."""
    current = current_epoch(session, share=True)
    if epoch is None or current != epoch:
        raise LeadershipLost(epoch, current)


# What an outbox round or a job is given to check its leadership in a transaction.
Fence = Callable[[Session], None]


class Lease:
    """This daemon's hold on the lead: ``acquire``, ``renew`` on an interval, ``release``."""

    def __init__(self, lock: ExclusiveLock, sessions: sessionmaker[Session], holder: str,
                 *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.lock = lock
        self._sessions = sessions
        self.holder = holder
        self._now = now
        self.epoch: int | None = None

    def acquire(self) -> int | None:
        """Lead if nobody does: the new epoch, or None when another daemon holds the lock.

        Raises what the database raises (the lock is then let go again).
        """
        self.release()
        if not self.lock.acquire():
            return None
        try:
            epoch = self._raise_epoch()
        except BaseException:
            self.lock.release()
            raise
        self.epoch = epoch
        log.info("leading with epoch %d", epoch)
        return epoch

    def _raise_epoch(self) -> int:
        now = self._now()
        with transaction(self._sessions) as session:
            # The row is migration 0005's; put back if someone emptied the table.
            session.execute(dialect_of(session).insert_skipping_conflicts(
                table_of(DaemonLeader), [{"id": ROW_ID, "epoch": 0}], ["id"]))
            epoch = session.execute(
                update(DaemonLeader).where(DaemonLeader.id == ROW_ID)
                .values(epoch=DaemonLeader.epoch + 1, holder=self.holder, acquired_at=now,
                        renewed_at=now)
                .returning(DaemonLeader.epoch)
            ).scalar_one()
        return int(epoch)

    def renew(self) -> bool:
        """Confirm the lease; False (and the lease is over) when it is lost. Never raises."""
        if self.epoch is None:
            return False
        if not self.lock.alive():
            self._lost("the leader lock's connection is gone")
            return False
        try:
            with transaction(self._sessions) as session:
                moved = session.execute(
                    update(DaemonLeader)
                    .where(DaemonLeader.id == ROW_ID, DaemonLeader.epoch == self.epoch)
                    .values(renewed_at=self._now())
                    .execution_options(synchronize_session=False)
                ).rowcount  # type: ignore[attr-defined]
        except Exception as exc:
            # Not written (the database is locked or away); the lock is still ours.
            log.warning("lease of epoch %s not written down: %s", self.epoch, exc)
            return True
        if moved != 1:
            self._lost("another daemon raised the epoch")
            return False
        return True

    def _lost(self, why: str) -> None:
        log.error("lost the lead of epoch %s: %s", self.epoch, why)
        self.epoch = None
        self.lock.release()

    def fence(self, session: Session) -> None:
        """``fence`` with this lease's epoch."""
        fence(session, self.epoch)

    def release(self) -> None:
        """Let the lead go (never raises)."""
        self.epoch = None
        self.lock.release()
