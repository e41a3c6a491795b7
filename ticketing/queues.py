"""Which tickets stand in which queue: the definitions the web desk, the CLI and the health
report (``madoguchi status``, /metrics) all count and list by.

The "not closed" test is written as a literal (``ACTIVE``), the same text as
the partial index ``ix_tickets_active_due`` of migration 0002, so that SQLite
and PostgreSQL both match a query to that index.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, exists, text

from madoguchi.ticketing.models import Flag, Ticket, TicketFlag

ACTIVE = text("tickets.status <> 'closed'")

# What staff decide on in mail triage: a stranger, a contract expired or not yet
# started, an unknown number.
REVIEW_FLAGS = (Flag.UNREGISTERED_SENDER, Flag.CONTRACT_EXPIRED, Flag.CONTRACT_NOT_STARTED,
                Flag.UNKNOWN_SUPPORT_NUMBER)


def flagged(flags: Sequence[Flag]) -> ColumnElement[bool]:
    """The ticket carries any of ``flags``."""
    return exists().where(TicketFlag.ticket_id == Ticket.id, TicketFlag.flag.in_(list(flags)))


# What puts a ticket in each triage queue.
FAX_TRIAGE = (ACTIVE, flagged([Flag.UNREADABLE_FAX]))
MAIL_TRIAGE = (ACTIVE, flagged(REVIEW_FLAGS), ~flagged([Flag.UNREADABLE_FAX]))

# Not yet answered: what the first-response clock still runs for. Written as the partial
# index ``ix_tickets_awaiting_due`` of migration 0010 is (with ACTIVE beside it).
AWAITING = text("tickets.first_responded_at IS NULL")
# Waiting for us: 対応中, not 保留 (waiting for the customer). A customer's mail to a
# 保留 ticket puts it back to 対応中 (ingest/steps/placement.py).
WAITING_FOR_US = text("tickets.status = 'open'")

# The flags that put a ticket in a triage queue; ``tickets.triage_flags`` counts them,
# kept by the triggers of migration 0016 (which writes this list out as it stands).
TRIAGE_FLAGS = (*REVIEW_FLAGS, Flag.UNREADABLE_FAX)
# Both triage queues at once (the count beside the queue's トリアージ view), from the
# ticket's own column: ``ix_tickets_active_views`` counts it without a join.
ANY_TRIAGE = (ACTIVE, text("tickets.triage_flags > 0"))
