"""Who sent the FAX, by the sending machine's number: the registered contacts it belongs to.

The reader took the number from the page's header line or the file's TSI
(``ocr/sender.py``), a FAX-to-email gateway's caller ID from its mail
(``ingest/fax.py``). A contact whose registered FAX number it is is the
likely sender: the boxes' decision weighs that customer's numbers more
(``support_number``), an unreadable page is given that customer for staff
to confirm (``entitlement``), and triage shows it as a suggestion.
"""

from __future__ import annotations

from madoguchi.ingest.arrival import Arrival, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.inbound import Outcome
from madoguchi.ticketing import store


def _run(batch: Batch, arrival: Arrival) -> Outcome | None:
    sender = arrival.fax.sender
    if sender is None:
        return None
    contacts = store.contacts_for_fax(batch.session, sender.digits)
    arrival.sender_contacts = contacts
    arrival.fax.record["sender_fax"] = {
        "digits": sender.digits,
        "source": sender.source,
        "raw": sender.raw,
        "contacts": [c.id for c in contacts],
        "customers": sorted({c.customer_id for c in contacts}),
        "support_numbers": sorted({k.support_number for c in contacts for k in c.contracts}),
    }
    return None


STEP = Step("fax_sender", _run)
