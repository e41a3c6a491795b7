"""The daemon's daily ``retention`` job (``ticketing.retention``), scheduled with one line.

    retention_job.schedule(scheduler, settings)    # in Daemon._add_jobs

It runs at ``[retention] run_at`` local time on the leader, and goes on in
batches while a run found more than one batch to remove.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from madoguchi.config import Settings
from madoguchi.ticketing.retention import apply_retention

log = logging.getLogger("madoguchi.retention")
MAX_ROUNDS = 50


def schedule(scheduler: Any, settings: Settings) -> None:
    at = time.fromisoformat(settings.retention.run_at)
    scheduler.add_job(f"{__name__}:run", CronTrigger(hour=at.hour, minute=at.minute),
                      id="retention", replace_existing=True)


def run() -> None:
    """The job: the running daemon's desk, the policy, until nothing more is due."""
    from madoguchi import daemon

    active = daemon._ACTIVE
    if active is None:
        return
    desk = active.desk
    for _ in range(MAX_ROUNDS):
        report = apply_retention(desk, desk.settings.retention, datetime.now(UTC))
        if report.removed_anything:
            log.info("retention: %s", report.counts())
        if not report.full:
            return
