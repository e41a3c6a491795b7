"""Bounces, auto-replies, bulk mail and loops are recognised (``ticketing.rules.autoreply``);
the machine_mail step decides what becomes of them."""

from __future__ import annotations

from madoguchi.ingest.arrival import Arrival, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.inbound import Outcome
from madoguchi.ticketing.rules.autoreply import classify_auto


def _run(batch: Batch, arrival: Arrival) -> Outcome | None:
    arrival.auto = classify_auto(arrival.mail, batch.settings.desk_address)
    return None


STEP = Step("autoreply", _run)
