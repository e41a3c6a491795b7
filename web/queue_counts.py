"""The queue views' counts, kept until a ticket changes (or for ``TTL`` seconds).

Each queue page shows six counts (mine, unassigned, due today, …); at 1 M
tickets they cost more than the rest of the page (bench/results/web.txt).
They are kept per view, user and day, and forgotten

- when this process commits a change to a ticket, its messages, flags or
  outbox (``watch``): the page an agent is sent back to after an action
  counts afresh;
- when the live hub hears of a change by any process (``changed``, while a
  live page is open: the moment a redrawn queue must be right);
- else after ``TTL`` seconds (another process's change with no live page
  open: a count at most that old, as help desks' overview counts are).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from madoguchi.ticketing.models import Message, OutboxMessage, Ticket, TicketFlag

TTL = 10.0
_MAX_KEPT = 10_000  # views × users × days: far more than a desk has
_WROTE = "madoguchi_queue_counts_wrote"


class CountMemo:
    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self._clock = ttl, clock
        self._lock = threading.Lock()
        self._generation = 0
        self._kept: dict[Hashable, tuple[int, float]] = {}

    def changed(self, *_what: object) -> None:
        """Something a count may include changed: count everything afresh."""
        with self._lock:
            self._generation += 1
            self._kept.clear()

    def get(self, key: Hashable, count: Callable[[], int]) -> int:
        now = self._clock()
        with self._lock:
            kept, generation = self._kept.get(key), self._generation
        if kept is not None and now - kept[1] < self.ttl:
            return kept[0]
        value = count()
        with self._lock:
            # A change committed while counting: this value may predate it.
            if self._generation == generation:
                if len(self._kept) >= _MAX_KEPT:
                    self._kept.clear()
                self._kept[key] = (value, now)
        return value

    def watch(self, factory: sessionmaker[Session]) -> None:
        """Forget the counts whenever a session of ``factory`` commits a ticket's change."""
        event.listen(factory, "after_flush", _note_write)
        def after_commit(session: Session) -> None:
            if session.info.pop(_WROTE, False):
                self.changed()

        event.listen(factory, "after_commit", after_commit)
        event.listen(factory, "after_rollback", lambda s: s.info.pop(_WROTE, None))


def _note_write(session: Session, _context: Any) -> None:
    if any(isinstance(o, Ticket | Message | TicketFlag | OutboxMessage)
           for o in (*session.new, *session.dirty, *session.deleted)):
        session.info[_WROTE] = True
