"""A sender the desk's own mail server says is forged vouches for nothing.

The rules are ``ticketing.rules.authenticity``: only the Authentication-Results
headers the desk's own MTA wrote count (a trusted authserv-id, above its
Received header: ``desk_results``), in the order the message carries them.
Their answer decides whose address the later steps trust (an empty sender
matches no contact and no participant, so the ticket is flagged and staff
decide), and whether the sender is *vouched for* (DMARC passed), which
``mail_trust`` asks of a follow-up.
"""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32

from madoguchi.ingest.arrival import Arrival, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.inbound import Outcome
from madoguchi.ticketing.rules.authenticity import (
    desk_results,
    desk_vouches,
    sender_fails_authentication,
)


def header_order(raw: bytes) -> list[tuple[str, str]]:
    """The message's header fields in their order, unfolded (headers only are parsed)."""
    try:
        parsed = BytesHeaderParser(policy=compat32).parsebytes(raw)
    except Exception:  # a header block the parser cannot take vouches for nothing
        return []
    return [(name, " ".join(str(value).split())) for name, value in parsed.items()]


def _run(batch: Batch, arrival: Arrival) -> Outcome | None:
    msg = arrival.mail
    settings = batch.settings
    results = desk_results(header_order(arrival.item.raw), settings.trusted_authserv_ids,
                           settings.trusted_results_above_received)
    forged = sender_fails_authentication(results, settings.trusted_authserv_ids)
    arrival.sender = "" if forged else msg.from_addr
    arrival.vouched = not forged and desk_vouches(results)
    return None


STEP = Step("authenticity", _run)
