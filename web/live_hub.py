"""One listener per web process, fanning the desk's changes out to every live page.

The hub's thread waits on the database's change feed
(``ticketing.change_feed``: LISTEN on PostgreSQL, a poll of one indexed
value on SQLite) and hands what it heard to the event loop, which wakes the
subscribers it concerns: a ticket page's for that ticket, a queue page's for
any ticket. However many browsers are connected, the database sees one
listener per process. The thread starts with the first subscriber and stops
with the application.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from sqlalchemy import Engine

from madoguchi.ticketing.change_feed import ANYTHING, TICKET, Change, ChangeListener
from madoguchi.ticketing.dialect import dialect_of

log = logging.getLogger("madoguchi.web.live")

WAIT = 1.0  # the thread looks at its stop flag this often
RETRY = 5.0  # after the feed failed (database restarting)


class Subscriber:
    """One live page: what it was told of since it last looked."""

    def __init__(self, ticket_id: int | None) -> None:
        self.ticket_id = ticket_id  # None: the queue (any ticket)
        self.kinds: set[str] = set()
        self._event = asyncio.Event()

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


class LiveHub:
    def __init__(self, engine: Engine, poll_seconds: float) -> None:
        self.engine, self.poll = engine, poll_seconds
        self.subscribers: set[Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def subscribe(self, ticket_id: int | None) -> Subscriber:
        """Called in the event loop; starts the listener on first use."""
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._run, name="madoguchi-live",
                                            daemon=True)
            self._thread.start()
        sub = Subscriber(ticket_id)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def _dispatch(self, changes: list[Change]) -> None:
        for sub in list(self.subscribers):
            sub.offer(changes)

    def _run(self) -> None:
        listener: ChangeListener | None = None
        failed = False
        while not self._stop.is_set():
            try:
                if listener is None:
                    listener = dialect_of(self.engine).change_listener(self.engine, self.poll)
                changes = listener.wait(WAIT)
                if failed:  # what was committed while the feed was down is unknown
                    changes, failed = [ANYTHING, *changes], False
            except Exception:
                log.exception("the live desk's change feed failed; listening again in %s s",
                              RETRY)
                if listener is not None:
                    with contextlib.suppress(Exception):
                        listener.close()
                listener, failed = None, True
                self._stop.wait(RETRY)
                continue
            if changes and self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    self._loop.call_soon_threadsafe(self._dispatch, changes)
        if listener is not None:
            listener.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(WAIT * 3)
