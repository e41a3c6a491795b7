"""``madoguchi daemon``: the pollers and the SLA jobs, on APScheduler 3.

Jobs live in the desk's own database (APScheduler's SQLAlchemy job store),
so they survive restarts; a run missed while the daemon was down is
coalesced into one and still runs within ``daemon.misfire_grace_seconds``;
no job overlaps itself (``max_instances=1``), so one poll of a source never
overlaps another.

Only one daemon per database schedules at a time: the leader holds a lock
(a PostgreSQL advisory lock, or an ``flock`` on a file beside the SQLite
database), which the operating system or the server frees when the process
dies; a standby daemon retries and takes over.

Scale-out on PostgreSQL: every daemon, leader or standby, also polls the
IMAP sources on a scheduler of its own (in memory), and the daemons share
the mail claim by claim (``ingest.sources.claims``), so adding daemons adds
parsing, OCR and database workers. Folder sources, the outbox, the SLA jobs
and backups stay with the leader; mail queued by a standby, the web desk
or any other process wakes the leader's outbox at once (``outbox_wake``:
NOTIFY on PostgreSQL, a look at the due rows on SQLite). On SQLite, which
has one writer at a time, the leader alone polls.

IMAP sources keep an IDLE connection (``idle_watch``): an announced poll
runs at once, and the mail it queued wakes the leader's outbox.

A source whose poll fails backs off (``ingest.sources.backoff``): its poll
job's next run moves to the backoff's next attempt, in whichever scheduler
holds it, and keeps its interval from there; a good poll ends the backoff.

Leadership is a lease with a fencing epoch (``ticketing.leadership``),
taken and renewed by its own thread (``supervision.LeaseKeeper``); the
scheduler runs only while the lease is held, under its epoch, and is
stopped at once when it is lost. Every job, and every outbox claim, checks
the epoch first. Everything is supervised (``madoguchi.supervision``): the
schedulers' loops survive the job store's errors, each part beats, a
stalled scheduler is restarted, a wedged part makes the daemon exit
non-zero for systemd to restart it, and systemd's watchdog is pinged only
while every part beats on time. The main thread only follows the lease and
watches: no database error reaches it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from time import monotonic

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.orm import Session

from madoguchi import conversation_job, retention_job, sla_job
from madoguchi.app import Desk
from madoguchi.config import ImapSource
from madoguchi.idle_watch import IdleWatchers, PollGate
from madoguchi.ingest.sources.backoff import SourceBackoff, one_line
from madoguchi.ingest.sources.poller import Poller
from madoguchi.outbox_wake import OutboxWake
from madoguchi.sdnotify import notify, watchdog_seconds
from madoguchi.supervision import (
    EXIT_WEDGED,
    Component,
    Components,
    HeartbeatWriter,
    LeaseKeeper,
    SupervisedScheduler,
)
from madoguchi.ticketing.backoff import backoff_delay
from madoguchi.ticketing.db import make_engine, transaction
from madoguchi.ticketing.dialect import dialect_of
from madoguchi.ticketing.escalation import escalate, remind
from madoguchi.ticketing.heartbeats import this_daemon
from madoguchi.ticketing.leadership import LeadershipLost, Lease, fence
from madoguchi.ticketing.locks import ExclusiveLock
from madoguchi.ticketing.lookup import ticket_by_number
from madoguchi.ticketing.outbox import OutboxSender, SendReport

log = logging.getLogger("madoguchi.daemon")

# Job functions are found by APScheduler through a textual reference and
# must not carry the desk in their pickled arguments: they use this one.
_ACTIVE: Daemon | None = None
_ADVISORY_KEY = 0x4D61646F  # "Mado"
# How often the main thread follows the lease and watches the components.
_TEND_SECONDS = 0.2
# Restarts of a scheduler that beat in between; more in a row: it is wedged.
_MAX_RESTARTS = 5
SHARED, LEADER = "shared", "leader"


def leader_lock(desk: Desk) -> ExclusiveLock:
    """Held by the one daemon that schedules; freed when its process dies."""
    return dialect_of(desk.engine).leader_lock(desk.engine, _ADVISORY_KEY)


@dataclass
class PassReport:
    """What one pass of everything due did (``daemon --once``)."""

    polled: dict[str, str] = field(default_factory=dict)
    reminders: int = 0
    escalations: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    conversation: str = ""  # next-response, pending, auto-close (conversation_job)


@dataclass
class _Supervised:
    """A scheduler the main thread keeps running: how to make it, its restarts."""

    make: Callable[[], SupervisedScheduler]
    component: Component
    scheduler: SupervisedScheduler | None = None
    restarts: int = 0  # in a row, without a beat between
    start_at: float = 0.0  # monotonic: not before (backoff after a failed start)
    started_beat: float = 0.0


class Daemon:
    def __init__(
        self,
        desk: Desk,
        *,
        pollers: Mapping[str, Poller] | None = None,
        backoff: SourceBackoff | None = None,
    ) -> None:
        """``pollers`` (by source name; default: the configured sources') and
        ``backoff`` (its clock and randomness) are the tests' to give."""
        self.desk = desk
        self.settings = desk.settings
        d = desk.settings.daemon
        self.pollers = (dict(pollers) if pollers is not None
                        else {s.name: desk.poller(s) for s in desk.settings.sources})
        self.backoff = backoff or SourceBackoff(d, desk.factory)
        self.outbox = OutboxSender(desk.settings, desk.factory, fence=self._fence)
        self.lead = timedelta(minutes=d.reminder_lead_minutes)
        self.components = Components(d.component_late_seconds)
        self.lease: Lease | None = None  # set by ``run``; None: no leadership (``--once``)
        self.epoch: int | None = None  # the epoch this daemon's scheduler runs under
        self._rng = random.Random()
        self._plans: queue.Queue[tuple[list[tuple[str, datetime, str, str]], set[str]]] = (
            queue.Queue()
        )
        # (source, next attempt) of failed polls, for the scheduler polling it to apply.
        self._retries: dict[str, queue.Queue[tuple[str, datetime]]] = {
            SHARED: queue.Queue(), LEADER: queue.Queue()}
        self._jobs_added = False
        self._late: set[str] = set()
        self.gate = PollGate()  # a scheduled poll and one IDLE asked for never overlap
        self.idle = IdleWatchers(self)
        self.wake = OutboxWake(self)  # a round as soon as anyone queued mail

    # -- the jobs ------------------------------------------------------------

    def poll(self, name: str) -> str:
        """Poll one source; a failure is raised after its backoff is set."""
        return self.gate.run(f"poll:{name}", lambda: self._poll(name),
                             "polling already: once more")

    def _poll(self, name: str) -> str:
        component = self.components.get(f"poll:{name}")
        interval = self._interval(name)
        component.busy()
        try:
            report = self.pollers[name].poll_once()
        except Exception as exc:
            when = self.backoff.failed(name, exc)
            wait = max(0.0, (when - _now()).total_seconds())
            component.done("failing", one_line(exc), next_within=wait + interval)
            owner = SHARED if name in self.shared_sources() else LEADER
            self._retries[owner].put((name, when))
            raise
        self.backoff.succeeded(name)
        component.done("ok", str(report), next_within=interval)
        log.info("%s: %s", name, report)
        return str(report)

    def _interval(self, name: str) -> float:
        return next((s.interval_seconds for s in self.settings.sources if s.name == name), 60.0)

    def send_outbox(self) -> SendReport:
        return self.gate.run("outbox", self._send_outbox, SendReport())

    def _send_outbox(self) -> SendReport:
        component = self.components.get("outbox")
        component.busy()
        report = SendReport()
        try:
            report = self.outbox.send_due()
        finally:
            component.done("ok", f"sent {len(report.sent)}, retrying {len(report.retrying)}",
                           next_within=self.settings.daemon.outbox_interval_seconds)
        return report

    def _fence(self, session: Session) -> None:
        """Raise ``LeadershipLost`` unless this daemon's epoch still leads (when it leads)."""
        if self.lease is not None:
            if self.lease.epoch != self.epoch:  # found lost here, not yet taken elsewhere
                raise LeadershipLost(self.epoch, self.lease.epoch)
            fence(session, self.epoch)

    def run_job(self, action: str, *args: str) -> object:
        """A scheduled job, run only while this daemon's epoch leads; its result (None: not run)."""
        epoch = self.epoch
        try:
            with transaction(self.desk.factory) as session:
                self._fence(session)
        except LeadershipLost as exc:
            log.warning("%s not run: %s", action, exc)
            return None
        log.info("%s%s: run as the leader of epoch %s", action,
                 f" {' '.join(args)}" if args else "", epoch)
        return getattr(self, action)(*args)

    def remind(self, number: str) -> bool:
        """The reminder job of ticket ``number``; False when it is gone or not needed."""
        with transaction(self.desk.factory) as session:
            self._fence(session)
            ticket = ticket_by_number(session, number, follow_merges=False)
            return ticket is not None and remind(session, ticket, self.settings, _now())

    def escalate(self, number: str) -> bool:
        """The escalation job of ticket ``number``; False when it is gone or not needed."""
        with transaction(self.desk.factory) as session:
            self._fence(session)
            ticket = ticket_by_number(session, number, follow_merges=False)
            return ticket is not None and escalate(session, ticket, self.settings, _now())

    def sla_sweep(self) -> tuple[int, int]:
        """Reminders and escalations due now; those due later planned (``sla_job``)."""
        return sla_job.sweep(self)

    def conversation_sweep(self) -> str:
        """Next responses, pending dates and silences due now (``conversation_job``)."""
        return str(conversation_job.sweep(self))

    def backup(self) -> None:
        from madoguchi.backup import backup

        dest = self.settings.daemon.backup_dir
        assert dest is not None
        stamp = datetime.now(self.settings.tz).strftime("%Y%m%d-%H%M%S")
        backup(self.desk, Path(dest) / stamp)

    # -- running -------------------------------------------------------------

    def run_once(self) -> PassReport:
        """One pass of everything due, for cron and tests."""
        report = PassReport()
        for name in self.pollers:
            try:
                report.polled[name] = self.poll(name)
            except Exception as exc:
                log.exception("%s: poll failed", name)
                report.polled[name] = f"failed: {exc}"
        report.reminders, report.escalations = self.sla_sweep()
        report.conversation = self.conversation_sweep()
        sent = self.send_outbox()
        report.sent, report.retrying = len(sent.sent), len(sent.retrying)
        report.failed = len(sent.failed) + len(sent.interrupted)
        return report

    def shared_sources(self) -> list[str]:
        """The sources every daemon polls (scale-out), rather than the leader alone."""
        if not dialect_of(self.desk.engine).concurrent_writers:
            return []  # one writer at a time: the leader alone polls
        return [s.name for s in self.settings.sources if isinstance(s, ImapSource)]

    def run(self, stop: threading.Event) -> int:
        """Lead when nobody does, schedule while leading, until ``stop`` is set; exit code."""
        # From the main thread: the forkserver it starts lives as long as it does.
        self.desk.pipeline.start_workers()
        swept = self.desk.blobs.sweep_temporaries()
        if swept:
            log.info("removed %d temporary file(s) an earlier crash left in the store", swept)
        from madoguchi.web_server import start_for_daemon

        d = self.settings.daemon
        # Every daemon serves the desk when configured, leader or standby.
        web_server = start_for_daemon(self.desk)
        self.lease = Lease(leader_lock(self.desk), self.desk.factory, this_daemon())
        keeper = LeaseKeeper(self.lease, self.components.get("lease"),
                             renew_seconds=d.lease_renew_seconds,
                             retry_seconds=d.leader_retry_seconds)
        writer = HeartbeatWriter(self.components, self.desk.factory, this_daemon(),
                                 seconds=d.heartbeat_seconds, wedged_seconds=d.wedged_seconds)
        leader = _Supervised(self._leader_scheduler, self.components.get("scheduler"))
        shared = (_Supervised(self._shared_scheduler, self.components.get("shared-polls"))
                  if self.shared_sources() else None)
        keeper.start()
        writer.start()
        try:
            return self._supervise(stop, keeper, leader, shared, web_server is not None)
        finally:
            self.idle.stop()
            self.wake.stop()
            keeper.stop()
            self._stop(leader, wait=True)
            if shared is not None:
                self._stop(shared, wait=True)
            self.lease.release()
            writer.stop()
            if web_server is not None:
                web_server.stop()
            notify("STOPPING=1")

    def _supervise(self, stop: threading.Event, keeper: LeaseKeeper, leader: _Supervised,
                   shared: _Supervised | None, web: bool) -> int:
        """The main thread's loop: follow the lease, restart what stalled, ping the watchdog."""
        d = self.settings.daemon
        watchdog = watchdog_seconds()
        last_ping = last_check = 0.0
        if shared is not None:
            self._keep_running(shared)
            log.info("polling %s alongside any other daemon", ", ".join(self.shared_sources()))
        notify("READY=1", "STATUS=started; following the lead")
        while not stop.wait(_TEND_SECONDS):
            self._follow_lease(keeper.epoch, leader)
            self.idle.tend()
            self.wake.tend()
            for supervised in (leader, shared):
                if supervised is not None and (self.epoch is not None or supervised is shared):
                    self._keep_running(supervised)
            now = monotonic()
            if now - last_check >= d.heartbeat_seconds:
                last_check = now
                self._check_workers()
                if web:
                    self.components.get("web").beat("serving", next_within=d.heartbeat_seconds)
            self._exit_if_wedged()
            late = {c.name for c in self.components.late()}
            if late != self._late:
                if late:
                    log.error("LATE: %s; systemd's watchdog is not pinged", ", ".join(sorted(late)))
                self._late = late
            if watchdog and not late and now - last_ping >= watchdog / 3:
                notify("WATCHDOG=1")
                last_ping = now
        log.info("stopping: finishing the running jobs")
        return 0

    def _follow_lease(self, epoch: int | None, leader: _Supervised) -> None:
        """Schedule under ``epoch`` while it is held; stop at once when it is lost."""
        if epoch == self.epoch:
            return
        if self.epoch is not None:
            log.error("stopped scheduling: the lead of epoch %s is lost", self.epoch)
            notify("STATUS=standing by (the lead was lost)")
        self._stop(leader, wait=False)
        self.epoch = epoch
        self.components.get("scheduler").beat(
            "standby" if epoch is None else "starting", next_within=float(
                self.settings.daemon.leader_retry_seconds))
        if epoch is not None:
            leader.restarts = 0
            leader.start_at = 0.0

    def _keep_running(self, supervised: _Supervised) -> None:
        """Start the scheduler if it is not running, restart it if it stopped beating."""
        global _ACTIVE
        now = monotonic()
        component = supervised.component
        if supervised.scheduler is not None:
            if component.beat_mono > supervised.started_beat:
                supervised.restarts = 0  # it beats: the restarts are behind it
            if not component.late(now):
                return
            log.error("%s stopped beating (last: %s); restarting it", component.name,
                      component.detail or component.state)
            self._stop(supervised, wait=False)
            supervised.restarts += 1
            if supervised.restarts > _MAX_RESTARTS:
                _exit_wedged(component.name, f"restarted {_MAX_RESTARTS} times in vain")
        if now < supervised.start_at:
            return
        scheduler = supervised.make()
        try:
            scheduler.start()
        except Exception as exc:
            supervised.restarts += 1
            wait = backoff_delay(supervised.restarts, base_seconds=0.5, max_seconds=30,
                                 rng=self._rng).total_seconds()
            supervised.start_at = now + wait
            log.warning("%s could not start (%d in a row), again in %.1f s: %s",
                        component.name, supervised.restarts, wait, one_line(exc))
            component.beat("retrying", one_line(exc), next_within=wait + 1)
            return
        supervised.scheduler = scheduler
        supervised.started_beat = component.beat_mono
        component.beat("running", next_within=2.0)
        if supervised.component.name == "scheduler":
            _ACTIVE = self
            self._jobs_added = False
            log.info("this daemon is the scheduler (epoch %s)", self.epoch)
            notify(f"STATUS=leading (epoch {self.epoch})")

    def _stop(self, supervised: _Supervised, *, wait: bool) -> None:
        scheduler, supervised.scheduler = supervised.scheduler, None
        if scheduler is None:
            return
        with contextlib.suppress(Exception):  # stopped already
            scheduler.shutdown(wait=wait)
        if supervised.component.name == "scheduler":
            for name in self.pollers:
                if name not in self.shared_sources():
                    self.components.drop(f"poll:{name}")  # polled by the leader alone
            self.components.drop("outbox")

    def _check_workers(self) -> None:
        preparer = self.desk.pipeline.preparer
        if not preparer.workers:
            return
        component = self.components.get("workers")
        if preparer.check():
            component.beat("ok", f"{preparer.workers} workers",
                           next_within=self.settings.daemon.heartbeat_seconds)
        else:
            log.warning("a parse worker died while idle; the pool was renewed")
            component.beat("renewed", "a worker had died; a new pool",
                           next_within=self.settings.daemon.heartbeat_seconds)

    def _exit_if_wedged(self) -> None:
        now = monotonic()
        # A poll's progress: messages prepared (the desk's parsing and OCR).
        parsed = self.desk.pipeline.preparer.last_progress
        for component in self.components.all():
            progress = parsed if component.name.startswith("poll:") else 0.0
            if component.wedged(now, progress, self.settings.daemon.wedged_seconds):
                _exit_wedged(component.name, f"busy since {component.beat_at} ({component.detail})")

    def _tend_leader(self, scheduler: BackgroundScheduler) -> None:
        """In the leader's scheduler loop: its jobs, the sweep's plans, the polls' retries."""
        if not self._jobs_added:
            self._add_jobs(scheduler)
            self._jobs_added = True
        sla_job.apply_plans(self, scheduler)
        self._apply_retries(scheduler, self._retries[LEADER])

    def _leader_scheduler(self) -> SupervisedScheduler:
        d = self.settings.daemon
        # The job store has an engine of its own: its shutdown disposes of it.
        store = SQLAlchemyJobStore(engine=make_engine(self.settings.database_url))
        return SupervisedScheduler(
            self.components.get("scheduler"), self._tend_leader,
            jobstores={"default": store},
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": d.misfire_grace_seconds},
            jobstore_retry_interval=2, timezone=self.settings.tz,
        )

    def _shared_scheduler(self) -> SupervisedScheduler:
        """This daemon's own polls of the shared sources; they need no leadership."""
        shared = self.shared_sources()
        by_name = {s.name: s for s in self.settings.sources}
        scheduler = SupervisedScheduler(
            self.components.get("shared-polls"),
            lambda s: self._apply_retries(s, self._retries[SHARED]),
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(max_workers=max(1, len(shared)))},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=self.settings.tz,
        )
        for name in shared:
            scheduler.add_job(
                self.poll, IntervalTrigger(seconds=by_name[name].interval_seconds),
                args=[name], id=f"poll:{name}", next_run_time=_now(),
            )
        return scheduler

    def _apply_retries(self, scheduler: BackgroundScheduler,
                       retries: queue.Queue[tuple[str, datetime]]) -> None:
        """Move the next run of each failed poll's job to its backoff's next attempt.

        In the scheduler's loop, as ``sla_job.apply_plans``: the poll that failed
        handed it over (``_retries``). The job keeps its interval from there.
        """
        while not retries.empty():
            name, when = retries.get_nowait()
            try:
                with contextlib.suppress(JobLookupError):
                    scheduler.modify_job(f"poll:{name}", next_run_time=when)
            except Exception:
                retries.put((name, when))
                raise

    def _add_jobs(self, scheduler: BackgroundScheduler) -> None:
        d = self.settings.daemon
        shared = set(self.shared_sources())
        for source in self.settings.sources:
            if source.name in shared:
                # Stored by an earlier version or setup: every daemon polls it now.
                with contextlib.suppress(JobLookupError):
                    scheduler.remove_job(f"poll:{source.name}")
                continue
            scheduler.add_job(
                f"{__name__}:_run", IntervalTrigger(seconds=source.interval_seconds),
                args=["poll", source.name], id=f"poll:{source.name}", replace_existing=True,
                next_run_time=_now(),
            )
        scheduler.add_job(
            f"{__name__}:_run", IntervalTrigger(seconds=d.outbox_interval_seconds),
            args=["send_outbox"], id="outbox", replace_existing=True, next_run_time=_now(),
        )
        scheduler.add_job(
            f"{__name__}:_run", IntervalTrigger(seconds=d.sla_sweep_seconds),
            args=["sla_sweep"], id="sla-sweep", replace_existing=True, next_run_time=_now(),
        )
        retention_job.schedule(scheduler, self.settings)  # [retention], daily
        conversation_job.schedule(scheduler, self.settings)  # next response, pending, silence
        if d.backup_dir is not None:
            at = time.fromisoformat(d.backup_time)
            scheduler.add_job(
                f"{__name__}:_run", CronTrigger(hour=at.hour, minute=at.minute),
                args=["backup"], id="backup", replace_existing=True,
            )


def _run(action: str, *args: str) -> None:
    """The one job function APScheduler stores a reference to."""
    daemon = _ACTIVE
    if daemon is None:  # a job fired after shutdown began
        return
    daemon.run_job(action, *args)


def _exit_wedged(name: str, why: str) -> None:
    """End the process at once, non-zero: a wedged thread cannot be stopped otherwise.

    systemd (``Restart=on-failure``) starts the daemon again; the lock and
    the database sessions end with the process.
    """
    log.critical("%s is wedged: %s; exiting with status %d for a restart", name, why,
                 EXIT_WEDGED)
    notify(f"STATUS=exiting: {name} is wedged")
    logging.shutdown()
    os._exit(EXIT_WEDGED)


def _now() -> datetime:
    return datetime.now(UTC)
