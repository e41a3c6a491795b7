"""Machine-written mail joins a ticket it is clearly about, and never reopens, opens or
acknowledges anything; what names no ticket of the desk is kept in the quarantine."""

from __future__ import annotations

from madoguchi.ingest.arrival import Arrival, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.inbound import Outcome, OutcomeKind
from madoguchi.ingest.quarantine import quarantine
from madoguchi.ingest.steps.message import add_message
from madoguchi.ticketing.rules.threading import ThreadAction


def _run(batch: Batch, arrival: Arrival) -> Outcome | None:
    auto = arrival.auto
    if auto is None:
        return None
    decision = arrival.decision
    assert decision is not None
    if decision.action in (ThreadAction.JOIN, ThreadAction.REOPEN):
        target = arrival.target
        assert target is not None
        add_message(batch, arrival, target, auto_kind=auto.value)
        return Outcome(OutcomeKind.THREADED, target.number, reason=auto.value)
    return quarantine(
        batch, arrival.item, arrival.prepared.digest, auto.value,
        f"machine-written mail ({auto.value}) that names no ticket of the desk",
    )


STEP = Step("machine_mail", _run)
