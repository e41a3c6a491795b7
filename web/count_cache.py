"""The queue views' counts, kept by a web process until a ticket changes.

Every queue page shows six counts (``web.queue_pages``), one pass over the
tickets not closed: at a million tickets, fifty thousand open, 11 ms of the
database's time on every page, when most pages follow no change at all. A
count is kept here until the desk's change feed (``web.live_hub``, the one
listener of this process) hears of any changed ticket, or this process
answers a POST (an action here: the page it redirects to must show it at
once), and never longer than ``MAX_AGE`` seconds.

A count is only kept while the feed is listening, and only on a database
where each statement reads the data committed when it starts (PostgreSQL):
a count read before a change whose word arrives meanwhile is not kept (the
generation moved). On SQLite a transaction reads one snapshot from its first
statement on, so a count could be older than the word that cleared the cache;
there every page counts (a SQLite desk is small: the counts cost little).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

MAX_AGE = 30.0  # seconds: what a lost notification could leave stale, at worst
_MAX_KEYS = 500  # users x days: cleared whole beyond this


class CountCache:
    def __init__(self, trusted: Callable[[], bool], max_age: float = MAX_AGE) -> None:
        self.trusted, self.max_age = trusted, max_age
        self._lock = threading.Lock()
        self._generation = 0
        self._kept: dict[Hashable, tuple[float, list[int]]] = {}

    def counts(self, key: Hashable, count: Callable[[], list[int]]) -> list[int]:
        """The counts of ``key``: kept ones, or ``count()``'s (kept when nothing changed
        while it ran)."""
        if not self.trusted():
            return count()
        with self._lock:
            kept, generation = self._kept.get(key), self._generation
        if kept is not None and time.monotonic() - kept[0] < self.max_age:
            return list(kept[1])
        started = time.monotonic()
        counts = count()
        with self._lock:
            if self._generation == generation:
                if len(self._kept) >= _MAX_KEYS:
                    self._kept.clear()
                self._kept[key] = (started, list(counts))
        return counts

    def clear(self) -> None:
        """A ticket changed: every count is read again (and none read meanwhile is kept)."""
        with self._lock:
            self._generation += 1
            self._kept.clear()
