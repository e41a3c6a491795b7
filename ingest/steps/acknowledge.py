"""The acknowledgement (受付のお知らせ) of each new ticket, queued in the batch's transaction.

After the chunk's rows are written, because an outbox row names its ticket
by id; those not queued yet, in the order the tickets were opened, with one
INSERT. Whether a ticket is acknowledged, and the mail, are
``ticketing.acknowledgement``'s, in the voice of the ticket's product (the
per-sender hourly limit is counted once for the batch). In the careful pass
each acknowledgement has its own savepoint: a failure there costs the
acknowledgement, never the ticket.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime

from madoguchi.ingest.arrival import BatchStep
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.drafts import NewMessage, NewTicket
from madoguchi.ticketing.acknowledgement import (
    ACK_KIND,
    ack_key,
    acknowledgement_due,
    recent_ack_counts,
)
from madoguchi.ticketing.outbox import insert_outbox, outbox_values

log = logging.getLogger("madoguchi.ingest.pipeline")


def _queue(
    batch: Batch, due: list[tuple[NewTicket, NewMessage]], now: datetime, counts: Counter[str]
) -> None:
    """Queue the acknowledgements ``due`` with one INSERT; ``counts`` (per sender) counts on.

    ``counts`` takes only what was inserted, so a caller whose savepoint
    rolls back after a failure here has counted nothing for it.
    """
    rows: list[dict[str, object]] = []
    to: dict[str, str] = {}  # dedupe key → sender
    pending: Counter[str] = Counter()  # this call's, per sender
    for ticket, message in due:
        sender = message.sender.lower()
        ack = acknowledgement_due(ticket, message, batch.settings, now=now,
                                  recent_acks=counts[sender] + pending[sender],
                                  company=ticket.company,
                                  voice=batch.deadlines.products.get(ticket.product).voice)
        if ack is not None:
            key = ack_key(ticket)
            rows.append(outbox_values(kind=ACK_KIND, dedupe_key=key,
                                      ticket_id=ticket.id, message=ack, now=now))
            to[key] = sender
            pending[sender] += 1
    inserted = insert_outbox(batch.session, rows)
    for key, sender in to.items():
        if key in inserted:
            counts[sender] += 1
        else:
            log.info("outbox: %s already queued, not again", key)


def _run(batch: Batch) -> None:
    staged = batch.staged
    due = staged.new_tickets[staged.acknowledged:]
    if not due:
        return
    staged.acknowledged = len(staged.new_tickets)
    if staged.ack_counts is None:
        staged.ack_now = batch.now()
        staged.ack_counts = recent_ack_counts(batch.session, staged.ack_now)
    now, counts = staged.ack_now, staged.ack_counts
    assert now is not None
    if not batch.careful:
        _queue(batch, due, now, counts)
        return
    for ticket, message in due:
        try:
            with batch.session.begin_nested():
                _queue(batch, [(ticket, message)], now, counts)
        except Exception:
            log.exception("%s: acknowledgement not queued", ticket.number)


STEP = BatchStep("acknowledge", _run)
