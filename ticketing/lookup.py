"""Finding a ticket by its number: the one lookup every caller uses.

A merged ticket keeps its number and points at the ticket it was merged
into (``merged_into_id``). A customer's follow-up quoting the old number,
or staff typing it, belong to the ticket it went into (``follow_merges``);
the daemon's reminder for the old ticket, or its own page, want the ticket
itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.interfaces import ORMOption

from madoguchi.ticketing.models import Ticket
from madoguchi.ticketing.ticket_number import normalise


def ticket_by_number(
    session: Session,
    number: str,
    *,
    follow_merges: bool,
    options: Sequence[ORMOption] = (),
) -> Ticket | None:
    """The ticket numbered ``number`` (any case, blanks ignored), or None.

    With ``follow_merges`` the ticket it was merged into, and so on (a chain
    that loops ends where it would repeat). ``options`` (loader options) apply
    to the ticket returned.
    """
    canonical = normalise(number)
    if canonical is None:
        return None
    # unique(), and every row read: ``options`` may join collections (the ticket's page).
    ticket = session.scalars(select(Ticket).where(Ticket.number == canonical)
                             .options(*options)).unique().one_or_none()
    seen: set[int] = set()
    while follow_merges and ticket is not None and ticket.merged_into_id is not None:
        seen.add(ticket.id)
        if ticket.merged_into_id in seen:
            break
        ticket = session.scalars(select(Ticket).where(Ticket.id == ticket.merged_into_id)
                                 .options(*options)).unique().one_or_none()
    return ticket
