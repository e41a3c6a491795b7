"""Machine-written mail joins a ticket it is clearly about, and never reopens, opens or
acknowledges anything; what names no ticket of the desk is kept in the quarantine.

A bounce of the desk's own mail is attached to that mail's outbox row too, and
marks it (and its ticket) undelivered (``ticketing.delivery.record_bounce``).
"""

from __future__ import annotations

from madoguchi.ingest.arrival import Arrival, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.inbound import Outcome, OutcomeKind
from madoguchi.ingest.quarantine import quarantine
from madoguchi.ingest.steps.message import add_message
from madoguchi.ticketing.delivery import record_bounce
from madoguchi.ticketing.rules.autoreply import AutoKind
from madoguchi.ticketing.rules.delivery import parse_delivery_status
from madoguchi.ticketing.rules.threading import ThreadAction


def _run(batch: Batch, arrival: Arrival) -> Outcome | None:
    auto = arrival.auto
    if auto is None:
        return None
    decision = arrival.decision
    assert decision is not None
    msg = arrival.prepared.message
    if auto is AutoKind.BOUNCE and msg is not None:
        report = parse_delivery_status(msg.delivery_status or "")
        # The returned headers name the mail; else the report's Original-Message-ID.
        returned = msg.bounced_message_id or report.original_message_id
        if returned:
            record_bounce(batch.session, returned, report, msg.message_id, arrival.when)
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
