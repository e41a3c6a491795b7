"""The daemon's ``conversation`` sweep (``ticketing.conversation_jobs``), scheduled with one line.

    conversation_job.schedule(scheduler, settings)    # in Daemon._add_jobs

Every ``daemon.sla_sweep_seconds`` on the leader, through the daemon's fenced
job runner: next-response reminders and escalations, pending reminders at
their date, auto-close of solved tickets after their silence.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.interval import IntervalTrigger

from madoguchi.config import Settings
from madoguchi.ticketing.conversation_jobs import ConversationJobs, SweepReport

if TYPE_CHECKING:
    from madoguchi.daemon import Daemon


def schedule(scheduler: Any, settings: Settings) -> None:
    scheduler.add_job(
        "madoguchi.daemon:_run", IntervalTrigger(seconds=settings.daemon.sla_sweep_seconds),
        args=["conversation_sweep"], id="conversation-sweep", replace_existing=True,
        next_run_time=datetime.now(UTC),
    )


def sweep(daemon: Daemon) -> SweepReport:
    """One sweep for the daemon's desk, every act fenced by its epoch."""
    desk = daemon.desk
    jobs = ConversationJobs(desk.factory, desk.settings, desk.deadlines, daemon._fence)
    return jobs.sweep(datetime.now(UTC))
