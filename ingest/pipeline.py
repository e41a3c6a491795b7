"""The one path of an inbound message: prepare → the steps of its path → one commit.

Sources hand over batches of raw bytes (``Inbound``). The preparer parses or
OCRs them (in worker processes when it pays) and keeps their bytes in the
blob store; the steps listed in ``ingest.steps`` then take each message
through dedupe, threading, entitlement, placement, numbering, deadline and
storage, asking the pure rules in ``ticketing.rules``; all of a batch is
committed in one transaction together with the source's own bookkeeping.

Speed: new tickets and messages are staged in the batch (``ingest.batch``)
and written chunk by chunk, with one multi-row INSERT per table; what the
rules need from the database is read once per chunk, not once per message.
Safety: if anything goes wrong in that fast path, the transaction is rolled
back and the batch is run again message by message, each in a savepoint
(its rows written within it), so one bad message is quarantined with its
error and the rest are stored.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from madoguchi.config import Settings
from madoguchi.ingest import steps
from madoguchi.ingest.arrival import Arrival, BatchStep, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.fax import fax_config
from madoguchi.ingest.inbound import Inbound, Outcome
from madoguchi.ingest.prepare import DESK_FAULTS, PrepareConfig, Prepared, Preparer
from madoguchi.ingest.quarantine import quarantine
from madoguchi.ticketing.blobstore import BlobStore
from madoguchi.ticketing.deadlines import Deadlines

log = logging.getLogger("madoguchi.ingest.pipeline")

# The database's (locked, connection lost): never a reason to quarantine a message.
_DATABASE_FAULTS = (OperationalError, InterfaceError)


def path_of(prepared: Prepared) -> tuple[Step, ...]:
    """The steps a prepared message goes through."""
    if prepared.error is not None:
        return steps.UNREADABLE
    return steps.FAX if prepared.fax is not None else steps.MAIL


def run_path(batch: Batch, arrival: Arrival) -> Outcome:
    for step in path_of(arrival.prepared):
        outcome = step.run(batch, arrival)
        if outcome is not None:
            return outcome
    raise AssertionError(f"the path of {arrival.item.source_ref} ended without an outcome")


def _run_all(batch: Batch, batch_steps: tuple[BatchStep, ...]) -> None:
    for step in batch_steps:
        step.run(batch)


class Pipeline:
    """Implements ``ingest.inbound.Sink``."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        blobs: BlobStore,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        parse_workers: int | None = None,
        deadlines: Deadlines | None = None,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.blobs = blobs
        self.now = now
        self.deadlines = deadlines or Deadlines.from_settings(settings)
        workers = parse_workers if parse_workers is not None else (os.cpu_count() or 1)
        self.preparer = Preparer(
            PrepareConfig(settings.limits, fax_config(settings), str(blobs.root)), blobs, workers
        )

    def close(self) -> None:
        self.preparer.close()

    def start_workers(self) -> None:
        """Start the worker processes now rather than at the first large batch.

        So is this year's business calendar built (national holidays are
        computed day by day, about 0.1 s) rather than by the first ticket.
        """
        started = self.preparer.start()
        self.deadlines.calendar.window(self.now())
        for future in started:
            future.result()

    def ingest(self, item: Inbound) -> Outcome:
        return self.ingest_batch([item])[0]

    def ingest_batch(
        self,
        items: Sequence[Inbound],
        *,
        in_transaction: Callable[[Session], None] | None = None,
    ) -> list[Outcome]:
        parsed: list[Prepared] = []
        stream = self.preparer.stream(items)
        reserved: dict[int, list[int]] = {}
        try:
            outcomes = self._store(items, parsed, stream, in_transaction, reserved,
                                   careful=False)
        except DESK_FAULTS:
            raise  # it ended the stream too: no careful pass could read the rest
        except Exception:
            # The careful pass finds the culprit and stores the rest.
            log.warning("batch of %d failed in the fast path; retrying one by one", len(items),
                        exc_info=True)
            parsed.extend(stream)  # whatever the fast path had not read yet
            outcomes = self._store(items, [], iter(parsed), in_transaction, reserved,
                                   careful=True)
        for item, result, outcome in zip(items, parsed, outcomes, strict=True):
            _log_outcome(item, result, outcome)
        return outcomes

    def _store(
        self,
        items: Sequence[Inbound],
        seen: list[Prepared],
        stream: Iterator[Prepared],
        in_transaction: Callable[[Session], None] | None,
        reserved: dict[int, list[int]],
        *,
        careful: bool,
    ) -> list[Outcome]:
        """Store the batch in one transaction; ``seen`` collects what was read."""
        outcomes: list[Outcome] = []
        with self.factory() as session, session.begin(), session.no_autoflush:
            batch = Batch(session, self.settings, self.deadlines, self.blobs, self.now,
                          reserved, in_transaction, careful)
            pairs = zip(items, stream, strict=True)
            while chunk := list(islice(pairs, steps.CHUNK_SIZE)):
                seen.extend(p for _, p in chunk)  # kept for a careful retry, read once
                batch.chunk = chunk
                _run_all(batch, steps.CHUNK_START)
                store_one = _careful if careful else _fast
                outcomes.extend(store_one(batch, item, prepared) for item, prepared in chunk)
                # The chunk's rows (the careful pass wrote them one by one) and
                # acknowledgements, still in the batch's transaction: written
                # while the workers read the next chunk, not after the last.
                _run_all(batch, steps.CHUNK_END)
            _run_all(batch, steps.BATCH_END)
        return outcomes


def _fast(batch: Batch, item: Inbound, prepared: Prepared) -> Outcome:
    return run_path(batch, Arrival(item, prepared))


def _careful(batch: Batch, item: Inbound, prepared: Prepared) -> Outcome:
    """One message in a savepoint of its own; if it fails, it alone is quarantined."""
    saved = batch.staged.snapshot()
    session = batch.session
    try:
        with session.begin_nested():
            outcome = run_path(batch, Arrival(item, prepared))
            steps.rows.write(batch)
            session.flush()
            return outcome
    except _DATABASE_FAULTS:
        raise  # the database's fault, not the message's: the batch waits for the next poll
    except Exception as exc:
        log.exception("%s %s: internal error", item.source, item.source_ref)
        batch.staged.restore(saved)
        with session.begin_nested():
            outcome = quarantine(batch, item, prepared.digest, "internal_error",
                                 f"{type(exc).__name__}: {exc}")
            session.flush()
            return outcome


def _log_outcome(item: Inbound, result: Prepared, outcome: Outcome) -> None:
    log.info(
        "%s %s: %s%s",
        item.source,
        item.source_ref,
        outcome.kind.value,
        f" {outcome.ticket_number}" if outcome.ticket_number else "",
        extra={"source": item.source, "source_ref": item.source_ref,
               "ticket": outcome.ticket_number, "outcome": outcome.kind.value,
               "message_id": result.message.message_id if result.message else None,
               "sha256": result.digest},
    )
