"""The leader's outbox round as soon as anyone queued mail (``ticketing.outbox_signal``).

On PostgreSQL a standby daemon polls the shared IMAP sources too, and with
IDLE it takes new mail at once; only the leader sends, so without word
from the standby its acknowledgements waited for the leader's next
scheduled round (``daemon.outbox_interval_seconds``; an hour in a test
once, which looked like an outbox that had stopped). ``OutboxWake`` is a
thread in every daemon that listens; while its daemon leads, each
notification (a burst: one) runs a round through the daemon's fenced job
runner, which the outbox's gate keeps from overlapping the scheduled one
(a round asked for meanwhile: the running one goes round once more).

It beats as the component ``outbox-wake``; a listener that fails connects
again after a doubling backoff, and a round follows each (re)connect. A
thread that died is started again (``tend``). SQLite has no listener: none
is started.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import TYPE_CHECKING

from madoguchi.ingest.sources.backoff import one_line
from madoguchi.ticketing.backoff import backoff_delay
from madoguchi.ticketing.dialect import dialect_of

if TYPE_CHECKING:
    from madoguchi.daemon import Daemon

log = logging.getLogger("madoguchi.outbox_wake")

# The longest one wait for a notification lasts: the thread beats this often.
WAIT_SECONDS = 2.0


class OutboxWake:
    """Starts, restarts and stops the listening thread of one daemon (if its dialect has one)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.available = dialect_of(daemon.desk.engine).outbox_listener(daemon.desk.engine) \
            is not None
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.rounds = 0  # rounds run on word of queued mail (the tests look)

    def tend(self) -> None:
        """Start the thread if it is not running (at start-up, or after it died)."""
        if not self.available or self.stopping.is_set():
            return
        if self.thread is not None and self.thread.is_alive():
            return
        if self.thread is not None:
            log.error("the outbox's listener died; starting it again")
        self.thread = threading.Thread(target=self._run, name="madoguchi-outbox-wake",
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(10)

    def _run(self) -> None:
        engine = self.daemon.desk.engine
        listener = dialect_of(engine).outbox_listener(engine)
        assert listener is not None
        component = self.daemon.components.get("outbox-wake")
        rng, failures = random.Random(), 0
        try:
            while not self.stopping.is_set():
                try:
                    queued = listener.wait(WAIT_SECONDS)
                except Exception as exc:  # the server, the network: listen again
                    failures += 1
                    wait = backoff_delay(failures, base_seconds=0.5, max_seconds=30,
                                         rng=rng).total_seconds()
                    log.warning("outbox listener failed (%d in a row), again in %.1f s: %s",
                                failures, wait, one_line(exc))
                    component.beat("reconnecting", one_line(exc),
                                   next_within=wait + WAIT_SECONDS)
                    self.stopping.wait(wait)
                    continue
                failures = 0
                if queued and self.daemon.epoch is not None:
                    self._send()
                component.beat("listening", next_within=WAIT_SECONDS)
        finally:
            listener.close()

    def _send(self) -> None:
        # The round beats as ``outbox`` (its wedge is caught there): no limit here meanwhile.
        self.daemon.components.get("outbox-wake").beat("sending", next_within=float("inf"))
        self.rounds += 1
        try:
            self.daemon.run_job("send_outbox")
        except Exception as exc:  # the round's own log and status say it
            log.warning("the outbox round on word of queued mail failed: %s", one_line(exc))
