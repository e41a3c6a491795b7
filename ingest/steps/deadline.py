"""A new ticket's first-response deadline: ``ticketing.deadlines``, the one owner of the rule
(the desk's business calendar and policy, the contract's own terms winning)."""

from __future__ import annotations

from madoguchi.ingest.arrival import Arrival, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.inbound import Outcome


def _run(batch: Batch, arrival: Arrival) -> Outcome | None:
    ticket = arrival.new_ticket
    if ticket is not None:
        deadline = batch.deadlines.first_response(arrival.when, arrival.contract)
        ticket.work_starts_at, ticket.first_response_due = deadline.starts_at, deadline.due_at
    return None


STEP = Step("deadline", _run)
