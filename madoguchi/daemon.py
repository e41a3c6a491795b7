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
and backups stay with the leader. On SQLite, which has one writer at a
time, the leader alone polls.

A source whose poll fails backs off (``ingest.sources.backoff``): its poll
job's next run is moved to the backoff's next attempt, in whichever
scheduler holds it, and the job keeps its interval from there; the first
good poll ends the backoff.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Mapping
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
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from madoguchi import retention_job
from madoguchi.app import Desk
from madoguchi.config import ImapSource
from madoguchi.ingest.sources.backoff import SourceBackoff
from madoguchi.ingest.sources.poller import Poller
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.dialect import dialect_of
from madoguchi.ticketing.escalation import escalate, remind, reminder_at, tickets_awaiting
from madoguchi.ticketing.locks import ExclusiveLock
from madoguchi.ticketing.lookup import ticket_by_number
from madoguchi.ticketing.outbox import OutboxSender, SendReport

log = logging.getLogger("madoguchi.daemon")

# Job functions are found by APScheduler through a textual reference and
# must not carry the desk in their pickled arguments: they use this one.
_ACTIVE: Daemon | None = None
_ADVISORY_KEY = 0x4D61646F  # "Mado"
# How often the main thread hands the schedulers what job threads asked of them.
_TEND_SECONDS = 0.2


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
        self.pollers = (dict(pollers) if pollers is not None
                        else {s.name: desk.poller(s) for s in desk.settings.sources})
        self.backoff = backoff or SourceBackoff(desk.settings.daemon, desk.factory)
        self.outbox = OutboxSender(desk.settings, desk.factory)
        self.lead = timedelta(minutes=desk.settings.daemon.reminder_lead_minutes)
        self._plans: queue.Queue[tuple[list[tuple[str, datetime, str, str]], set[str]]] = (
            queue.Queue()
        )
        # (source, next attempt) of failed polls, for the main thread to reschedule.
        self._retries: queue.Queue[tuple[str, datetime]] = queue.Queue()

    # -- the jobs ------------------------------------------------------------

    def poll(self, name: str) -> str:
        """Poll one source; a failure is raised after its backoff is set."""
        try:
            report = self.pollers[name].poll_once()
        except Exception as exc:
            self._retries.put((name, self.backoff.failed(name, exc)))
            raise
        self.backoff.succeeded(name)
        log.info("%s: %s", name, report)
        return str(report)

    def send_outbox(self) -> SendReport:
        return self.outbox.send_due()

    def remind(self, number: str) -> bool:
        """The reminder job of ticket ``number``; False when it is gone or not needed."""
        with transaction(self.desk.factory) as session:
            ticket = ticket_by_number(session, number, follow_merges=False)
            return ticket is not None and remind(session, ticket, self.settings, _now())

    def escalate(self, number: str) -> bool:
        """The escalation job of ticket ``number``; False when it is gone or not needed."""
        with transaction(self.desk.factory) as session:
            ticket = ticket_by_number(session, number, follow_merges=False)
            return ticket is not None and escalate(session, ticket, self.settings, _now())

    def sla_sweep(self) -> tuple[int, int]:
        """Act on what is due now; leave what is due later to the scheduler.

        Returns (reminders, escalations) sent in this sweep. The jobs for later
        are handed to the main thread (``_plans``): a job thread must not call
        the scheduler, whose shutdown holds its locks while it waits for jobs.
        """
        now = _now()
        calendar = self.desk.deadlines.calendar
        with self.desk.factory() as session:
            plan = [
                (t.number, reminder_at(t, calendar, self.lead), t.first_response_due)
                for t in tickets_awaiting(session)
            ]
        reminders = escalations = 0
        later: list[tuple[str, datetime, str, str]] = []
        for number, remind_at, due_at in plan:
            assert due_at is not None
            if remind_at is not None and remind_at <= now < due_at:
                reminders += self.remind(number)
            elif remind_at is not None and remind_at > now:
                later.append((f"remind:{number}", remind_at, "remind", number))
            if due_at <= now:
                escalations += self.escalate(number)
            else:
                later.append((f"escalate:{number}", due_at, "escalate", number))
        self._plans.put((later, {number for number, _, _ in plan}))
        return reminders, escalations

    def _apply_plans(self, scheduler: BackgroundScheduler) -> None:
        """Schedule the reminders and escalations a sweep found for later (main thread)."""
        while not self._plans.empty():
            later, waiting = self._plans.get_nowait()
            for job_id, when, action, number in later:
                if scheduler.get_job(job_id) is None:
                    scheduler.add_job(
                        f"{__name__}:_run", DateTrigger(run_date=when), args=[action, number],
                        id=job_id, replace_existing=True,
                    )
            # Answered or closed since: their jobs are cancelled.
            for job in scheduler.get_jobs():
                kind, _, number = job.id.partition(":")
                if kind in ("remind", "escalate") and number not in waiting:
                    job.remove()

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
        """Wait for leadership, schedule, run until ``stop`` is set; exit code."""
        self.desk.pipeline.start_workers()
        swept = self.desk.blobs.sweep_temporaries()
        if swept:
            log.info("removed %d temporary file(s) an earlier crash left in the store", swept)
        from madoguchi.web_server import start_for_daemon

        # Every daemon serves the desk when configured, leader or standby.
        web_server = start_for_daemon(self.desk)
        shared = self._shared_pollers()
        try:
            return self._lead(stop, shared)
        finally:
            if shared is not None:
                shared.shutdown(wait=True)
            if web_server is not None:
                web_server.stop()

    def _shared_pollers(self) -> BackgroundScheduler | None:
        """This daemon's own polls of the shared sources; they need no leadership."""
        shared = self.shared_sources()
        if not shared:
            return None
        by_name = {s.name: s for s in self.settings.sources}
        scheduler = BackgroundScheduler(
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
        scheduler.start()
        log.info("polling %s alongside any other daemon", ", ".join(shared))
        return scheduler

    def _lead(self, stop: threading.Event, shared: BackgroundScheduler | None) -> int:
        global _ACTIVE
        # The scheduler holding each source's poll job, for its backoff.
        polls = dict.fromkeys(self.shared_sources(), shared) if shared is not None else {}
        lock = leader_lock(self.desk)
        while not lock.acquire():
            log.info("another daemon schedules for this database; standing by")
            if self._stand_by(stop, polls, self.settings.daemon.leader_retry_seconds):
                return 0
        log.info("this daemon is the scheduler")
        _ACTIVE = self
        scheduler = self._scheduler()
        try:
            scheduler.start()
            self._add_jobs(scheduler)
            polls |= {name: scheduler for name in self.pollers if name not in polls}
            while not stop.wait(_TEND_SECONDS):
                self._apply_plans(scheduler)
                self._apply_retries(polls)
            log.info("stopping: finishing the running jobs")
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=True)
            _ACTIVE = None
            lock.release()
        return 0

    def _stand_by(self, stop: threading.Event, polls: Mapping[str, BackgroundScheduler],
                  seconds: float) -> bool:
        """Wait ``seconds``, rescheduling failed polls meanwhile; True once ``stop`` is set."""
        deadline = monotonic() + seconds
        while not stop.wait(max(0.0, min(_TEND_SECONDS, deadline - monotonic()))):
            self._apply_retries(polls)
            if monotonic() >= deadline:
                return False
        return True

    def _apply_retries(self, polls: Mapping[str, BackgroundScheduler]) -> None:
        """Move the next run of each failed poll's job to its backoff's next attempt.

        From the main thread only, as ``_apply_plans``: the poll that failed
        handed it over (``_retries``). The job keeps its interval from there.
        """
        while not self._retries.empty():
            name, when = self._retries.get_nowait()
            scheduler = polls.get(name)
            if scheduler is None:
                continue  # polled by no job of this daemon (``run_once``)
            with contextlib.suppress(JobLookupError):
                scheduler.modify_job(f"poll:{name}", next_run_time=when)

    def _scheduler(self) -> BackgroundScheduler:
        d = self.settings.daemon
        return BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.desk.engine)},
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": d.misfire_grace_seconds,
            },
            timezone=self.settings.tz,
        )

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
    getattr(daemon, action)(*args)


def _now() -> datetime:
    return datetime.now(UTC)
