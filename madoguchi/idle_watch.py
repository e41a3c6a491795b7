"""The daemon's IDLE watchers, and the gate that keeps a source's polls one at a time.

Each IMAP source with ``idle = true`` gets an ``IdleWatcher``
(``ingest.sources.idle``) whose announcements poll the source at once, on
a thread of the source's own (announcements made while it polls: one more
poll), as the daemon would poll it: a shared source
(PostgreSQL) by every daemon, any other by the leader alone under its
epoch. Each watcher is a supervised component, ``idle:<source>``: it beats
while it waits, and one whose thread died is started again.

``PollGate`` makes the scheduled poll and an announced one (and the
scheduled outbox round and one the outbox's wake-up runs) never
overlap in one process: one asked for while one runs is not lost, the
running one goes round once more.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from madoguchi.config import ImapSource
from madoguchi.ingest.sources.idle import IdleWatcher

if TYPE_CHECKING:
    from madoguchi.daemon import Daemon

log = logging.getLogger("madoguchi.idle")
T = TypeVar("T")


class PollGate:
    """One poll of a source at a time; a poll asked for meanwhile runs right after it."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._running: set[str] = set()
        self._again: set[str] = set()

    def run(self, name: str, poll: Callable[[], T], busy: T) -> T:
        """``poll()``'s result; ``busy`` when one was running (it goes round once more)."""
        with self._mutex:
            if name in self._running:
                self._again.add(name)
                return busy
            self._running.add(name)
        try:
            while True:
                result = poll()
                with self._mutex:
                    if name not in self._again:
                        self._running.discard(name)
                        return result
                    self._again.discard(name)
        except BaseException:
            with self._mutex:
                self._running.discard(name)
                self._again.discard(name)
            raise


class IdleWatchers:
    """The IDLE watchers of one daemon: started with it, restarted when one died."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.sources = [s for s in daemon.settings.sources
                        if isinstance(s, ImapSource) and s.idle and s.name in daemon.pollers]
        self.watchers: dict[str, IdleWatcher] = {}
        self.wakes = {s.name: threading.Event() for s in self.sources}
        self.pollers: dict[str, threading.Thread] = {}
        self.stopping = threading.Event()

    def _make(self, source: ImapSource) -> IdleWatcher:
        component = self.daemon.components.get(f"idle:{source.name}")
        d = self.daemon.settings.daemon
        return IdleWatcher(
            source, self.wakes[source.name].set,
            lambda state, detail, within: component.beat(state, detail, next_within=within),
            active=lambda: self._polls_here(source.name),
            backoff_base_seconds=d.source_backoff_base_seconds / 10,
            backoff_max_seconds=d.source_backoff_max_seconds)

    def _polls_here(self, name: str) -> bool:
        return name in self.daemon.shared_sources() or self.daemon.epoch is not None

    def _poll_when_woken(self, name: str) -> None:
        """The thread that polls a source each time its watcher announced mail."""
        wake = self.wakes[name]
        while not self.stopping.is_set():
            if wake.wait(1.0):
                wake.clear()  # announced again meanwhile: polled once more
                self._announced(name)

    def _announced(self, name: str) -> None:
        try:  # the poll beats as poll:<source>, as a scheduled one does
            if name in self.daemon.shared_sources():
                self.daemon.poll(name)
            elif self.daemon.epoch is not None:
                self.daemon.run_job("poll", name)
            # The acknowledgements just queued go now, not at the outbox's next turn,
            # from the outbox's own thread: this one is free for the next announcement.
            self.daemon.wake.poke()
        except Exception as exc:  # the poll's own backoff and status say it
            log.warning("%s: the poll after IDLE failed: %s", name, exc)

    def tend(self) -> None:
        """Start what is not running (at start-up, or after a thread died)."""
        for source in self.sources:
            poller = self.pollers.get(source.name)
            if poller is None or not poller.is_alive():
                self.pollers[source.name] = poller = threading.Thread(
                    target=self._poll_when_woken, args=(source.name,),
                    name=f"idle-poll-{source.name}", daemon=True)
                poller.start()
            watcher = self.watchers.get(source.name)
            if watcher is None or not watcher.is_alive():
                if watcher is not None:
                    log.error("%s: the IDLE watcher died; starting it again", source.name)
                self.watchers[source.name] = watcher = self._make(source)
                watcher.start()

    def stop(self) -> None:
        self.stopping.set()
        for watcher in self.watchers.values():
            watcher.stop()
        for thread in [*self.watchers.values(), *self.pollers.values()]:
            thread.join(10)
