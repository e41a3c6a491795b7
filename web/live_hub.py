"""One listener per web process, fanning the desk's changes out to every live page.

The hub's thread waits on the database's change feed
(``ticketing.change_feed``: LISTEN on PostgreSQL, a poll of one indexed
value on SQLite) and hands what it heard to the event loop, which wakes the
subscribers it concerns: a ticket page's for that ticket, a queue page's for
any ticket. However many browsers are connected, the database sees one
listener per process. The thread starts with the first subscriber and stops
with the application.

The hub also keeps what would otherwise be work per stream to one piece per
process, so that two hundred open pages cost little more than one:

- the queue pages hear of changed tickets together, ``queue_coalesce``
  seconds after the first change and at most once per ``queue_every``
  (a burst of mail is one redraw, and a note a second does not wake every
  queue stream every second);
- every ``tend_every`` seconds its thread calls ``tend`` with every
  subscriber (``web.live``: one transaction beats every open ticket page's
  presence row and reads who is on those tickets, and now and then one
  statement checks every stream's session); what ``tend`` returns is run in
  the event loop to tell the streams.

It is also the process's word that tickets changed for what it keeps
(``on_ticket_change``: ``web.count_cache``), and is then started with the
application rather than by the first stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine

from madoguchi.ticketing.change_feed import ANYTHING, TICKET, Change, ChangeListener
from madoguchi.ticketing.dialect import dialect_of
from madoguchi.ticketing.presence import Viewer

log = logging.getLogger("madoguchi.web.live")

WAIT = 1.0  # the thread looks at its stop flag this often
RETRY = 5.0  # after the feed failed (database restarting)


class Subscriber:
    """One live page: what it was told of since it last looked."""

    def __init__(self, ticket_id: int | None, *, token: str = "",
                 view: tuple[str, int] | None = None) -> None:
        self.ticket_id = ticket_id  # None: the queue (any ticket)
        self.token = token  # its session's, for the hub's checks
        self.view = view  # a ticket page's presence row: (view_key, staff_id)
        self.viewers: list[Viewer] = []  # who was on its ticket at the last beat
        self.kinds: set[str] = set()
        self._event = asyncio.Event()

    def tell(self, kind: str) -> None:
        """A kind of its own (the hub's ``beat``, ``end``), not a change of the feed."""
        self.kinds.add(kind)
        self._event.set()

    def offer(self, changes: list[Change]) -> None:
        for c in changes:
            if self.ticket_id is None:
                if c.kind == TICKET:
                    self.kinds.add(TICKET)
            elif c.ticket_id in (self.ticket_id, 0):
                self.kinds.add(c.kind)
        if self.kinds:
            self._event.set()

    async def wait(self, timeout: float) -> set[str]:
        """The kinds of change heard (empty after ``timeout`` without one)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        kinds, self.kinds = self.kinds, set()
        self._event.clear()
        return kinds


# What the hub's thread calls with every subscriber; it returns what the event loop runs.
Tend = Callable[[list[Subscriber]], Callable[[], None]]


class LiveHub:
    def __init__(self, engine: Engine, poll_seconds: float, *, tend: Tend | None = None,
                 tend_every: float = 15.0, queue_coalesce: float = 1.0,
                 queue_every: float = 5.0) -> None:
        self.engine, self.poll = engine, poll_seconds
        self.tend, self.tend_every = tend, tend_every
        self.queue_coalesce, self.queue_every = queue_coalesce, queue_every
        self.subscribers: set[Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._queues_due: asyncio.TimerHandle | None = None
        self._queues_told = -float("inf")  # the loop's clock
        self._starting = threading.Lock()
        # Called in the hub's thread when a ticket changed (web.count_cache's clear).
        self.on_ticket_change: list[Callable[[], None]] = []
        self.listening = False  # the feed is connected: what commits now will be heard

    def subscribe(self, ticket_id: int | None, *, token: str = "",
                  view: tuple[str, int] | None = None) -> Subscriber:
        """Called in the event loop; starts the listener on first use."""
        self._loop = asyncio.get_running_loop()
        self.start()
        sub = Subscriber(ticket_id, token=token, view=view)
        self.subscribers.add(sub)
        return sub

    def start(self) -> None:
        """Start the listener's thread if it is not running (from any thread)."""
        with self._starting:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="madoguchi-live",
                                                daemon=True)
                self._thread.start()

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def _dispatch(self, changes: list[Change]) -> None:
        for sub in list(self.subscribers):
            if sub.ticket_id is not None:
                sub.offer(changes)
        if self._queues_due is None and self._loop is not None and any(
                c.kind == TICKET for c in changes):
            now = self._loop.time()
            wait = max(self.queue_coalesce, self._queues_told + self.queue_every - now)
            self._queues_due = self._loop.call_later(wait, self._tell_queues)

    def _tell_queues(self) -> None:
        self._queues_due = None
        assert self._loop is not None
        self._queues_told = self._loop.time()
        for sub in list(self.subscribers):
            if sub.ticket_id is None:
                sub.offer([ANYTHING])

    def _tended(self, next_at: float) -> float:
        """Run ``tend`` when it is time (in the hub's thread); the next time."""
        if self.tend is None or time.monotonic() < next_at:
            return next_at
        try:
            subs = list(self.subscribers)  # a copy: the loop adds and removes meanwhile
            if subs:
                told = self.tend(subs)
                if self._loop is not None and not self._loop.is_closed():
                    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                        self._loop.call_soon_threadsafe(told)
        except Exception:  # the database: the streams go on, the rows beat next time
            log.exception("the live desk's beat failed; again in %s s", self.tend_every)
        return time.monotonic() + self.tend_every

    def _run(self) -> None:
        listener: ChangeListener | None = None
        failed = False
        next_tend = time.monotonic() + self.tend_every
        while not self._stop.is_set():
            next_tend = self._tended(next_tend)
            try:
                if listener is None:
                    listener = dialect_of(self.engine).change_listener(self.engine, self.poll)
                changes = listener.wait(WAIT)
                self.listening = True  # a wait returned: it was listening throughout
                if failed:  # what was committed while the feed was down is unknown
                    changes, failed = [ANYTHING, *changes], False
            except Exception:
                self.listening = False
                for told in self.on_ticket_change:  # what is kept may be stale by now
                    told()
                log.exception("the live desk's change feed failed; listening again in %s s",
                              RETRY)
                if listener is not None:
                    with contextlib.suppress(Exception):
                        listener.close()
                listener, failed = None, True
                self._stop.wait(RETRY)
                continue
            if any(c.kind == TICKET for c in changes):
                for told in self.on_ticket_change:
                    told()
            if changes and self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    self._loop.call_soon_threadsafe(self._dispatch, changes)
        self.listening = False
        if listener is not None:
            listener.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(WAIT * 3)
