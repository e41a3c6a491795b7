"""A message the desk has stored before (a re-poll, a second copy through Cc, a re-submitted
file) is recognised by its dedupe key and stored no second time."""

from __future__ import annotations

from madoguchi.ingest.arrival import Arrival, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.inbound import Outcome, OutcomeKind


def _run(batch: Batch, arrival: Arrival) -> Outcome | None:
    key = arrival.prepared.key
    assert key is not None
    return Outcome(OutcomeKind.DUPLICATE) if batch.is_known(key) else None


STEP = Step("dedupe", _run)
