"""The support service number a new ticket's mail gives: at the top, or after its label.

The rule is ``ticketing.support_number.find_support_number``. A number whose
check digit fails matches no contract; it is kept as what was written
(``support_number_written``), so staff see it, and is never the ticket's
support number, which is its contract's. A FAX's number was read by OCR when it was
prepared; digit boxes it could not read alone (handwriting) are decided here, by
``rules.fax_number.choose_number`` over the registered numbers.
"""

from __future__ import annotations

from madoguchi.ingest.arrival import Arrival, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.inbound import Outcome
from madoguchi.ticketing import store
from madoguchi.ticketing.rules.fax_number import boxes_decided, choose_number
from madoguchi.ticketing.support_number import find_support_number


def _mail(batch: Batch, arrival: Arrival) -> Outcome | None:
    if not arrival.opens_ticket:
        return None
    msg = arrival.mail
    found = find_support_number(msg.subject, msg.text, batch.settings.support_number)
    arrival.support_number = found.number.digits if found.number else None
    arrival.written_number = arrival.support_number or (
        found.invalid[0] if found.invalid else None
    )
    return None


def _fax(batch: Batch, arrival: Arrival) -> Outcome | None:
    fax = arrival.fax
    arrival.support_number = arrival.written_number = fax.support_digits
    if fax.support_digits is None and fax.boxes is not None:
        # Boxes the reader could not read alone (handwriting): the closed set decides.
        boxes = fax.boxes
        registered = store.registered_numbers(batch.session, [r.digits for r in boxes.readings])
        own = {k.support_number for c in arrival.sender_contacts for k in c.contracts}
        choice = choose_number(boxes.readings, boxes.probabilities, registered, own)
        fax.record["boxes_choice"] = {"digits": choice.digits, "reason": choice.reason}
        problems = fax.record.get("problems")
        fax.record["problems"] = boxes_decided(
            [str(p) for p in problems] if isinstance(problems, list) else [], boxes.page, choice)
        if choice.digits is not None:
            arrival.support_number = arrival.written_number = choice.digits
            fax.record["method"] = "boxes"
    return None


MAIL = Step("support_number", _mail)
FAX = Step("fax_support_number", _fax)
