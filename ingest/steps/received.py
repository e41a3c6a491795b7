"""When the desk received a message: the moment its first-response clock starts."""

from __future__ import annotations

from datetime import datetime, timedelta

from madoguchi.ingest.arrival import Arrival, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.inbound import Inbound, Outcome
from madoguchi.ingest.message import ParsedMessage

# Clocks of relays and senders drift; more than this ahead is not believed.
CLOCK_SKEW = timedelta(hours=1)


def received_at(item: Inbound, msg: ParsedMessage | None, now: datetime) -> datetime:
    """The source's word (IMAP INTERNALDATE, a file's time), else the headers, else now.

    Headers are the sender's (or a relay's) word: a date in the future would
    give the ticket a due time that never comes, so it is not taken. A FAX
    document has no headers.
    """
    if item.received_at is not None:
        return item.received_at
    if msg is not None:
        for stated in (msg.received_date, msg.date):
            if stated is not None and stated <= now + CLOCK_SKEW:
                return stated
    return now


def _run(batch: Batch, arrival: Arrival) -> Outcome | None:
    arrival.received_at = received_at(arrival.item, arrival.prepared.message, batch.now())
    return None


STEP = Step("received", _run)
