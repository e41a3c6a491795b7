"""A failing source backs off: after each failed poll in a row its next poll waits longer.

The daemon asks ``SourceBackoff`` when a poll of a source failed (``failed``:
the moment of its next attempt) and when one succeeded (``succeeded``: back
to the interval). The wait doubles from ``daemon.source_backoff_base_seconds``
up to ``daemon.source_backoff_max_seconds``, with jitter
(``ticketing.backoff``), counted by this process: each daemon backs off on
its own, so a database that is down itself cannot stop the backoff.

Each failure is also written down (``SourceFailure``: failures in a row, since
when, the last error, the next attempt) in a short transaction of its own,
and the row is deleted by the next good poll, so that ``madoguchi status``
shows the source backing off from any process. With several daemons polling
one mailbox, the row counts the source's failed polls by all of them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from madoguchi.config.settings import DaemonSettings
from madoguchi.ticketing.backoff import backoff_delay
from madoguchi.ticketing.db import transaction
from madoguchi.ticketing.models import SourceFailure

log = logging.getLogger("madoguchi.ingest.backoff")

# The length of source_failures.last_error.
ERROR_CHARS = 300


@dataclass(frozen=True)
class Failing:
    """A source this process backs off from."""

    failures: int  # its failed polls in a row, here
    next_attempt_at: datetime


def one_line(error: BaseException, limit: int = ERROR_CHARS) -> str:
    """The error as one line of at most ``limit`` characters, for people."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SourceBackoff:
    """When each failing source is polled next; one instance per daemon process."""

    def __init__(
        self,
        settings: DaemonSettings,
        sessions: sessionmaker[Session],
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        self.base_seconds = settings.source_backoff_base_seconds
        self.max_seconds = settings.source_backoff_max_seconds
        self._sessions = sessions
        self._now = now
        self._rng = rng or random.Random()
        self._failing: dict[str, Failing] = {}

    def failing(self, source: str) -> Failing | None:
        return self._failing.get(source)

    def failed(self, source: str, error: BaseException) -> datetime:
        """Count a failed poll of ``source``, write it down; when to poll it next."""
        now = self._now()
        failures = self._failing[source].failures + 1 if source in self._failing else 1
        delay = backoff_delay(failures, base_seconds=self.base_seconds,
                              max_seconds=self.max_seconds, rng=self._rng)
        failing = self._failing[source] = Failing(failures, now + delay)
        log.warning("%s: poll failed (%d in a row); next try in %.1f s: %s",
                    source, failures, delay.total_seconds(), error, extra={"source": source})
        try:
            self._write_down(source, one_line(error), now, failing.next_attempt_at)
        except Exception as exc:
            # The database is often what failed: the backoff goes on from memory,
            # and status shows the source from its next failure written down.
            log.warning("%s: could not write the failure down: %s", source, one_line(exc),
                        extra={"source": source})
        return failing.next_attempt_at

    def succeeded(self, source: str) -> None:
        """A good poll of ``source``: polled at its interval again, nothing written down."""
        if self._failing.pop(source, None) is not None:
            log.info("%s: polled again after failing; back to its interval", source,
                     extra={"source": source})
        try:
            with transaction(self._sessions) as session:
                # Read first: a DELETE would take SQLite's write lock at every poll.
                row = session.get(SourceFailure, source)
                if row is not None:
                    session.delete(row)
        except Exception as exc:
            log.warning("%s: could not clear the failures written down: %s", source,
                        one_line(exc), extra={"source": source})

    def _write_down(self, source: str, error: str, now: datetime, next_at: datetime) -> None:
        for attempt in (1, 2):
            try:
                with transaction(self._sessions) as session:
                    row = session.get(SourceFailure, source, with_for_update=True)
                    if row is None:
                        session.add(SourceFailure(
                            source=source, failures=1, failing_since=now, last_failed_at=now,
                            next_attempt_at=next_at, last_error=error,
                        ))
                    else:
                        row.failures += 1
                        row.last_failed_at = now
                        row.next_attempt_at = next_at
                        row.last_error = error
                return
            except IntegrityError:
                # Another daemon wrote this source's first failure at the same
                # moment: its row is there now, and is counted on.
                if attempt == 2:
                    raise
