"""A new ticket's first-response deadline: ``ticketing.deadlines``, the one owner of the rule
(the product's calendar and its rule for the kind of inquiry, the contract's own terms
winning).

The kind (a licence-key request, or anything else) is recognised from the
subject and text by ``rules.inquiry`` with the product's words. A ticket out
of scope (a sender not registered for the contract, no support period that
day) is promised nothing: it gets no deadline, so no reminder or escalation,
until staff accept it (``ticketing.triage``), and its clock starts then.
"""

from __future__ import annotations

from madoguchi.ingest.arrival import Arrival, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.inbound import Outcome
from madoguchi.ticketing.rules.inquiry import classify_inquiry
from madoguchi.ticketing.vocabulary import OUT_OF_SCOPE


def _text(arrival: Arrival) -> tuple[str, str]:
    msg = arrival.prepared.message
    subject, text = (msg.subject, msg.text) if msg is not None else ("", "")
    if arrival.prepared.fax is not None:
        text = f"{arrival.fax.text}\n{text}"
    return subject, text


def _run(batch: Batch, arrival: Arrival) -> Outcome | None:
    ticket = arrival.new_ticket
    if ticket is None:
        return None
    deadlines = batch.deadlines
    product = deadlines.product_for(arrival.contract, ticket.product)
    ticket.inquiry_kind = classify_inquiry(*_text(arrival), product.words)
    if ticket.flags & OUT_OF_SCOPE:
        return None
    deadline = deadlines.first_response(arrival.when, arrival.contract, product=ticket.product,
                                        kind=ticket.inquiry_kind)
    ticket.work_starts_at, ticket.first_response_due = deadline.starts_at, deadline.due_at
    return None


STEP = Step("deadline", _run)
