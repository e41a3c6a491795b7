"""Input that could not be read (not mail, a broken or hostile FAX document, a worker that
died on it) is quarantined with the reason its reader gave."""

from __future__ import annotations

from madoguchi.ingest.arrival import Arrival, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.inbound import Outcome
from madoguchi.ingest.quarantine import quarantine


def _run(batch: Batch, arrival: Arrival) -> Outcome | None:
    error = arrival.prepared.error
    assert error is not None
    return quarantine(batch, arrival.item, arrival.prepared.digest, error.reason_code,
                      error.reason)


STEP = Step("unreadable", _run)
