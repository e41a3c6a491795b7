"""The support service number a new ticket's mail gives: at the top, or after its label.

The rule is ``ticketing.support_number.find_support_number``. A number whose
check digit fails matches no contract; it is kept as what was written
(``support_number_written``), so staff see it, and is never the ticket's
support number, which is its contract's. (A FAX's number was read by OCR when it was prepared.)
"""

from __future__ import annotations

from madoguchi.ingest.arrival import Arrival, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.inbound import Outcome
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
    arrival.support_number = arrival.written_number = arrival.fax.support_digits
    return None


MAIL = Step("support_number", _mail)
FAX = Step("fax_support_number", _fax)
