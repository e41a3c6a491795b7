"""Supervision inside the daemon: every long-lived part beats, and is watched.

Each part of the daemon is a ``Component`` (the lease, the scheduler, each
source's polls, the outbox, the worker pool, the web desk) that beats when
it works: a loop at each turn, a job when it starts (``busy``) and ends
(``done``). A beat says when the next one is due at the latest; past that
the component is LATE. The daemon's main thread (``madoguchi.daemon``)
looks at them a few times a second:

- a scheduler that stopped beating is restarted, with a backoff; one that
  cannot be restarted, or a job busy for ``daemon.wedged_seconds`` without
  a sign of progress, is wedged: the daemon exits with ``EXIT_WEDGED`` so
  that systemd starts it again (a thread cannot be killed from outside);
- systemd's watchdog is pinged only while no component is LATE, so a daemon
  whose main thread itself hangs is restarted by systemd.

``HeartbeatWriter`` writes the beats to ``daemon_heartbeats`` every
``daemon.heartbeat_seconds`` on a thread of its own (``ticketing.heartbeats``),
for ``madoguchi status`` and /metrics; a database that cannot be written
only delays that, never the daemon.

``SupervisedScheduler`` is APScheduler 3's ``BackgroundScheduler`` whose
loop cannot die: APScheduler handles the job store's errors in
``get_due_jobs`` but not in ``update_job``, ``remove_job`` or
``get_next_run_time``, which the same loop calls, so a lost database
connection or "database is locked" ended its thread. Here each turn of the
loop (``_process_jobs``, the one step APScheduler's own schedulers call;
APScheduler is pinned) catches what the job store raised, waits a
backoff with jitter and tries again, and beats. A job whose next run could
not be written runs again at the next turn; every job is idempotent
(polls, the outbox, the sweep, reminders by their dedupe keys).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from time import monotonic
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import Session, sessionmaker

from madoguchi.ingest.sources.backoff import one_line
from madoguchi.ticketing.backoff import backoff_delay
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.heartbeats import Beat, forget, forget_the_dead, write_beats
from madoguchi.ticketing.leadership import Lease

log = logging.getLogger("madoguchi.supervision")

# Exit status of a daemon that found a part of itself wedged (EX_SOFTWARE):
# systemd's Restart=on-failure starts it again.
EXIT_WEDGED = 70
# The longest a scheduler's loop sleeps: it beats at least this often.
LOOP_SECONDS = 1.0


@dataclass
class Component:
    """One part of the daemon, as its beats show it."""

    name: str
    late_seconds: float  # a beat overdue by this much is LATE
    state: str = "starting"
    detail: str = ""
    beat_mono: float = 0.0
    beat_at: datetime | None = None
    next_within: float = 0.0  # seconds after the beat by which the next is due
    busy_since: float | None = None  # monotonic, while a job runs

    def beat(self, state: str, detail: str = "", *, next_within: float = 0.0) -> None:
        self.state, self.detail = state, detail
        self.next_within = next_within
        self.beat_mono, self.beat_at = monotonic(), datetime.now(UTC)

    def busy(self, detail: str = "") -> None:
        self.busy_since = monotonic()
        self.beat("running", detail, next_within=float("inf"))

    def done(self, state: str, detail: str = "", *, next_within: float) -> None:
        self.busy_since = None
        self.beat(state, detail, next_within=next_within)

    def late(self, now: float) -> bool:
        return self.beat_at is not None and now > self.beat_mono + self.next_within \
            + self.late_seconds

    def wedged(self, now: float, progress: float, wedged_seconds: float) -> bool:
        """Busy for ``wedged_seconds`` with no progress (``progress``: monotonic) since."""
        return (self.busy_since is not None
                and now - max(self.busy_since, progress) > wedged_seconds)

    def as_beat(self, daemon: str, wedged_seconds: float) -> Beat | None:
        if self.beat_at is None:
            return None
        allowance = (wedged_seconds if self.busy_since is not None
                     else min(self.next_within, 10 * 365 * 86400.0))
        return Beat(daemon, self.name, self.state, self.detail, self.beat_at,
                    self.beat_at + timedelta(seconds=allowance + self.late_seconds))


class Components:
    """The daemon's components by name (thread-safe registry)."""

    def __init__(self, late_seconds: float) -> None:
        self.late_seconds = late_seconds
        self._mutex = threading.Lock()
        self._all: dict[str, Component] = {}

    def get(self, name: str) -> Component:
        with self._mutex:
            if name not in self._all:
                self._all[name] = Component(name, self.late_seconds)
            return self._all[name]

    def drop(self, name: str) -> None:
        with self._mutex:
            self._all.pop(name, None)

    def all(self) -> list[Component]:
        with self._mutex:
            return list(self._all.values())

    def late(self) -> list[Component]:
        now = monotonic()
        return [c for c in self.all() if c.late(now)]


class HeartbeatWriter(threading.Thread):
    """Writes the components' beats to the database every ``seconds``, until stopped."""

    def __init__(self, components: Components, sessions: sessionmaker[Session], daemon: str,
                 *, seconds: float, wedged_seconds: float) -> None:
        super().__init__(name="madoguchi-heartbeats", daemon=True)
        self.components = components
        self._sessions = sessions
        self.daemon_name = daemon
        self.seconds = seconds
        self.wedged_seconds = wedged_seconds
        self.stopping = threading.Event()
        self.written_mono = 0.0
        self._failed = 0

    def run(self) -> None:
        self._write(first=True)
        while not self.stopping.wait(self.seconds):
            self._write()

    def _write(self, *, first: bool = False) -> None:
        beats = [b for c in self.components.all()
                 if (b := c.as_beat(self.daemon_name, self.wedged_seconds)) is not None]
        try:
            with transaction(self._sessions) as session:
                if first:
                    forget_the_dead(session, datetime.now(UTC))
                write_beats(session, self.daemon_name, beats)
        except Exception as exc:
            self._failed += 1
            if self._failed in (1, 10) or self._failed % 100 == 0:
                log.warning("heartbeats not written (%d in a row): %s", self._failed,
                            one_line(exc))
            return
        self._failed = 0
        self.written_mono = monotonic()

    def stop(self) -> None:
        """Stop writing, and take this daemon's rows away (it is stopping cleanly)."""
        self.stopping.set()
        self.join(timeout=30)
        try:
            with transaction(self._sessions) as session:
                forget(session, self.daemon_name)
        except Exception as exc:
            log.warning("heartbeats of this daemon left behind: %s", one_line(exc))


class SupervisedScheduler(BackgroundScheduler):  # type: ignore[misc]
    """A BackgroundScheduler whose loop survives the job store's errors, beats and tends.

    ``tend`` runs in the loop after each turn: what job threads handed over
    for the scheduler (they must not call it themselves: its shutdown holds
    its locks while it waits for them).
    """

    def __init__(self, component: Component, tend: Callable[[BackgroundScheduler], None],
                 rng: random.Random | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.component = component
        self._tend = tend
        self._rng = rng or random.Random()
        self._failures = 0

    def _process_jobs(self) -> float:
        try:
            # Before the due jobs: a failed poll's backoff moves its job first.
            self._tend(self)
            wait = super()._process_jobs()
        except Exception as exc:
            self._failures += 1
            delay = backoff_delay(self._failures, base_seconds=0.5, max_seconds=10,
                                  rng=self._rng).total_seconds()
            log.warning("%s: the job store failed (%d in a row), again in %.1f s: %s",
                        self.component.name, self._failures, delay, one_line(exc))
            self.component.beat("retrying", one_line(exc), next_within=delay + LOOP_SECONDS)
            return delay
        if self._failures:
            log.info("%s: the job store answers again", self.component.name)
        self._failures = 0
        self.component.beat("running", next_within=LOOP_SECONDS)
        return LOOP_SECONDS if wait is None else min(float(wait), LOOP_SECONDS)


class LeaseKeeper(threading.Thread):
    """Takes the lead when nobody holds it and renews it; no database error ends it.

    The daemon's main thread follows ``epoch``: a scheduler runs while it is
    set, under that epoch, and is stopped at once when it changes or goes.
    """

    def __init__(self, lease: Lease, component: Component, *, renew_seconds: float,
                 retry_seconds: float, rng: random.Random | None = None) -> None:
        super().__init__(name="madoguchi-lease", daemon=True)
        self.lease = lease
        self.component = component
        self.renew_seconds = renew_seconds
        self.retry_seconds = retry_seconds
        self._rng = rng or random.Random()
        self.stopping = threading.Event()
        self._standing_by = False

    @property
    def epoch(self) -> int | None:
        return self.lease.epoch

    def run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                wait = self._turn()
            except Exception as exc:
                failures += 1
                wait = backoff_delay(failures, base_seconds=min(1.0, self.retry_seconds),
                                     max_seconds=30, rng=self._rng).total_seconds()
                log.warning("the lead: the database failed (%d in a row), again in %.1f s: %s",
                            failures, wait, one_line(exc))
                self.component.beat("retrying", one_line(exc), next_within=wait)
            else:
                failures = 0
            self.stopping.wait(wait)

    def _turn(self) -> float:
        if self.lease.epoch is not None:
            if self.lease.renew():
                self.component.beat("leading", f"epoch {self.lease.epoch}",
                                    next_within=self.renew_seconds)
                return self.renew_seconds
            # Lost: try again as a standby does, when nobody else holds it.
            self.component.beat("standby", "the lead was lost", next_within=self.retry_seconds)
            return self.retry_seconds
        epoch = self.lease.acquire()
        if epoch is None:
            if not self._standing_by:
                log.info("another daemon schedules for this database; standing by")
            self._standing_by = True
            self.component.beat("standby", "another daemon leads",
                                next_within=self.retry_seconds)
            return self.retry_seconds
        self._standing_by = False
        self.component.beat("leading", f"epoch {epoch}", next_within=self.renew_seconds)
        return self.renew_seconds

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)
