"""The daemon's SLA sweep: reminders and escalations due now, jobs for those due later.

``sweep`` runs as the leader's ``sla_sweep`` job (every
``daemon.sla_sweep_seconds``): it acts on what is due now, each act fenced
by the daemon's epoch (``Daemon.remind`` / ``Daemon.escalate``), and hands
the jobs for later to the scheduler's loop (``Daemon._plans``): a job thread
must not call the scheduler, whose shutdown holds its locks while it waits
for jobs. ``apply_plans`` schedules them there (``Daemon._tend_leader``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from madoguchi.ticketing.escalation import reminder_at, tickets_awaiting

if TYPE_CHECKING:
    from madoguchi.daemon import Daemon

# (job id, when, action, ticket number) of a reminder or an escalation for later.
Plan = list[tuple[str, datetime, str, str]]


def sweep(daemon: Daemon) -> tuple[int, int]:
    """(reminders, escalations) sent now; the jobs for later queued for the scheduler."""
    now = datetime.now(UTC)
    deadlines = daemon.desk.deadlines
    with daemon.desk.factory() as session:
        # Each ticket's reminder on its own product's calendar.
        plan = [
            (t.number,
             reminder_at(t, deadlines.product_for(product=t.product).calendar, daemon.lead),
             t.first_response_due)
            for t in tickets_awaiting(session)
        ]
    reminders = escalations = 0
    later: Plan = []
    for number, remind_at, due_at in plan:
        assert due_at is not None
        if remind_at is not None and remind_at <= now < due_at:
            reminders += daemon.remind(number)
        elif remind_at is not None and remind_at > now:
            later.append((f"remind:{number}", remind_at, "remind", number))
        if due_at <= now:
            escalations += daemon.escalate(number)
        else:
            later.append((f"escalate:{number}", due_at, "escalate", number))
    daemon._plans.put((later, {number for number, _, _ in plan}))
    return reminders, escalations


def apply_plans(daemon: Daemon, scheduler: BackgroundScheduler) -> None:
    """Schedule the reminders and escalations a sweep found for later (scheduler loop)."""
    while not daemon._plans.empty():
        later, waiting = daemon._plans.get_nowait()
        try:
            _apply_plan(scheduler, later, waiting)
        except Exception:
            daemon._plans.put((later, waiting))  # the next turn tries again
            raise


def _apply_plan(scheduler: BackgroundScheduler, later: Plan, waiting: set[str]) -> None:
    for job_id, when, action, number in later:
        if scheduler.get_job(job_id) is None:
            scheduler.add_job(
                "madoguchi.daemon:_run", DateTrigger(run_date=when), args=[action, number],
                id=job_id, replace_existing=True,
            )
    # Answered or closed since: their jobs are cancelled.
    for job in scheduler.get_jobs():
        kind, _, number = job.id.partition(":")
        if kind in ("remind", "escalate") and number not in waiting:
            job.remove()
