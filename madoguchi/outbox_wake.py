"""The leader's outbox round as soon as mail is queued, by anyone, on either database.

Only the leader sends, but many queue mail: its own polls (those IDLE
asked for included), a standby's polls of a shared mailbox (PostgreSQL),
the web desk's replies and retries, ``madoguchi ingest`` in a process of
its own. Without word from them the mail waited for the leader's next
scheduled round (``daemon.outbox_interval_seconds``: an hour in a test
once, which looked like an outbox that had stopped). ``OutboxWake`` is a
thread in every daemon; while its daemon leads, it runs a round through
the daemon's fenced job runner (the outbox's gate keeps it from
overlapping the scheduled one: a round asked for meanwhile makes the
running one go round once more) when

- word came: ``NOTIFY madoguchi_outbox`` on PostgreSQL
  (``ticketing.outbox_signal``, from every transaction that queues or
  re-queues rows, delivered at its commit), or this daemon's own poll
  queued mail (``poke``: the poll's thread does not wait for the round),
  or the listener (re)connected, when what was queued meanwhile is unknown;
- or its look at the outbox (``outbox_signal.due_ids``, one read along the
  rows' index, every ``LOOK_SECONDS`` on SQLite, after each wait of the
  listener on PostgreSQL) finds a row due that the last round did not
  leave behind: mail queued by another process on SQLite, which has no
  NOTIFY; a retry whose backoff is over; expired leases of a dead sender.

Rows a round left due while sending none (the SMTP server down) are left
to the scheduled round, so a server that is down is not called twice a
second. The thread beats as the component ``outbox-wake``; a listener
that fails connects again after a doubling backoff. A thread that died
is started again (``tend``).
"""

from __future__ import annotations

import logging
import random
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from madoguchi.ingest.sources.backoff import one_line
from madoguchi.ticketing.backoff import backoff_delay
from madoguchi.ticketing.dialect import dialect_of
from madoguchi.ticketing.outbox import SendReport
from madoguchi.ticketing.outbox_signal import OutboxListener, due_ids

if TYPE_CHECKING:
    from madoguchi.daemon import Daemon

log = logging.getLogger("madoguchi.outbox_wake")

# The longest one wait for a notification lasts (PostgreSQL): the thread
# beats, and looks at the outbox, at least this often.
WAIT_SECONDS = 2.0
# Without notifications (SQLite): how often the leader looks at the outbox.
LOOK_SECONDS = 0.5


class OutboxWake:
    """Starts, restarts and stops the thread that wakes one daemon's outbox."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.stopping = threading.Event()
        self.poked = threading.Event()
        self.thread: threading.Thread | None = None
        self.rounds = 0  # rounds run on word or sight of queued mail
        # Due rows the last round left behind while sending nothing: not a reason
        # for another round (they wait for the scheduled one).
        self.left: set[int] = set()

    def poke(self) -> None:
        """This daemon queued mail: a round as soon as the thread wakes."""
        self.poked.set()

    def tend(self) -> None:
        """Start the thread if it is not running (at start-up, or after it died)."""
        if self.stopping.is_set():
            return
        if self.thread is not None and self.thread.is_alive():
            return
        if self.thread is not None:
            log.error("the outbox's wake-up died; starting it again")
        self.thread = threading.Thread(target=self._run, name="madoguchi-outbox-wake",
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.poked.set()
        if self.thread is not None:
            self.thread.join(10)

    def _run(self) -> None:
        engine = self.daemon.desk.engine
        listener = dialect_of(engine).outbox_listener(engine)
        component = self.daemon.components.get("outbox-wake")
        state, within = (("watching", LOOK_SECONDS) if listener is None
                         else ("listening", WAIT_SECONDS))
        rng, failures = random.Random(), 0
        try:
            while not self.stopping.is_set():
                try:
                    word = self._wait(listener)
                    if self.daemon.epoch is not None and (word or self._mail_due()):
                        self._send()
                except Exception as exc:  # the server, the network: listen again
                    failures += 1
                    wait = backoff_delay(failures, base_seconds=0.5, max_seconds=30,
                                         rng=rng).total_seconds()
                    log.warning("outbox wake-up failed (%d in a row), again in %.1f s: %s",
                                failures, wait, one_line(exc))
                    component.beat("reconnecting", one_line(exc), next_within=wait + within)
                    self.stopping.wait(wait)
                    continue
                failures = 0
                component.beat(state, next_within=within * 2)
        finally:
            if listener is not None:
                listener.close()

    def _wait(self, listener: OutboxListener | None) -> bool:
        """Whether word of queued mail came (a notification, a poke), waiting a while."""
        if listener is None:
            word = self.poked.wait(LOOK_SECONDS)
        else:
            word = listener.wait(WAIT_SECONDS) or self.poked.is_set()
        self.poked.clear()
        return word and not self.stopping.is_set()

    def _mail_due(self) -> bool:
        """The look: a row is due that the last round did not leave behind."""
        with self.daemon.desk.factory() as session:
            due = due_ids(session, datetime.now(UTC))
        self.left &= due  # a row that left the due ones and came back is news
        return bool(due - self.left)

    def _send(self) -> None:
        """A round; what it left due while sending nothing is left to the scheduled one."""
        # The round beats as ``outbox`` (its wedge is caught there): no limit here meanwhile.
        self.daemon.components.get("outbox-wake").beat("sending", next_within=float("inf"))
        self.rounds += 1
        report = self.daemon.run_job("send_outbox")  # its failure: the loop's backoff
        if not isinstance(report, SendReport):
            return  # not run: the lead was lost meanwhile
        if report.sent:
            self.left = set()  # it went on: whatever is still due is worth a round
        else:
            with self.daemon.desk.factory() as session:
                self.left = due_ids(session, datetime.now(UTC))
