"""A new ticket's number: the year's next, ``T-2026-000123`` (``ticketing.ticket_number``).

Where several daemons write at once (PostgreSQL): numbers are taken outside
the batch's transaction, like a sequence: holding the counter row until the
batch commits would make concurrent daemons store their batches one after
the other. Numbers the batch took but no longer uses (its fast pass failed,
a savepoint rolled back) go to its next tickets; only a batch that cannot
commit at all (the daemon killed, the database lost) leaves a gap.

SQLite has one writer at a time anyway: the first number of a year in the
batch takes the counter row's lock (``store.next_ticket_number``); the rest
count on in memory and are written back once, before the batch commits, so
numbers never have gaps.
"""

from __future__ import annotations

from sqlalchemy import Engine, update

from madoguchi.ingest.arrival import Arrival, BatchStep, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.inbound import Outcome
from madoguchi.ticketing import store
from madoguchi.ticketing.dialect import dialect_of
from madoguchi.ticketing.models import TicketCounter
from madoguchi.ticketing.ticket_number import TicketNumber


def _reserved(batch: Batch, engine: Engine, year: int) -> int:
    pool = batch.reserved.setdefault(year, [])
    used = batch.staged.used_numbers
    sequence = next((n for n in pool if (year, n) not in used), None)
    if sequence is None:
        sequence = store.reserve_ticket_sequence(engine, year)
        pool.append(sequence)
    used.add((year, sequence))
    return sequence


def _counted(batch: Batch, year: int) -> int:
    counters = batch.staged.counters
    if year not in counters:
        number = store.next_ticket_number(batch.session, batch.settings.threading.ticket_prefix,
                                          year)
        parsed = TicketNumber.parse(number)
        assert parsed is not None
        counters[year] = parsed.sequence
    else:
        counters[year] += 1
    return counters[year]


def next_number(batch: Batch, year: int) -> str:
    bind = batch.session.get_bind()
    if dialect_of(bind).concurrent_writers and isinstance(bind, Engine):
        sequence = _reserved(batch, bind, year)
    else:
        sequence = _counted(batch, year)
    return str(TicketNumber(batch.settings.threading.ticket_prefix, year, sequence))


def _run(batch: Batch, arrival: Arrival) -> Outcome | None:
    ticket = arrival.new_ticket
    if ticket is not None:
        ticket.number = next_number(batch, arrival.when.astimezone(batch.settings.tz).year)
    return None


def _save_counters(batch: Batch) -> None:
    for year, last in batch.staged.counters.items():
        batch.session.execute(
            update(TicketCounter).where(TicketCounter.year == year).values(last=last)
        )


STEP = Step("numbering", _run)
SAVE = BatchStep("numbering_saved", _save_counters)
