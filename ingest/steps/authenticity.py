"""A sender the desk's own mail server says is forged vouches for nothing.

The rule is ``ticketing.rules.authenticity``; here its answer decides whose
address the later steps trust (an empty sender matches no contact and no
participant, so the ticket is flagged and staff decide).
"""

from __future__ import annotations

from madoguchi.ingest.arrival import Arrival, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.inbound import Outcome
from madoguchi.ticketing.rules.authenticity import sender_fails_authentication


def _run(batch: Batch, arrival: Arrival) -> Outcome | None:
    msg = arrival.mail
    header = msg.headers.get("authentication-results")
    forged = header is not None and header != "" and sender_fails_authentication(
        [header], batch.settings.trusted_authserv_ids
    )
    arrival.sender = "" if forged else msg.from_addr
    return None


STEP = Step("authenticity", _run)
