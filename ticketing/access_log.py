"""Who opened which ticket, and what of it: a row per view, kept per ``[retention]``.

The web desk writes one when staff open a ticket, one of its files or its
HTML; supervisors and auditors read ``ticket_access_log``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from madoguchi.ticketing.models import StaffUser
from madoguchi.ticketing.security_models import TicketAccess


def opened(db: Session, user: StaffUser | None, ticket_id: int, what: str,
           now: datetime) -> None:
    """Record the view and commit it (a read has no transaction of its own to join)."""
    if user is None:
        return
    db.add(TicketAccess(at=now, staff_id=user.id, ticket_id=ticket_id, what=what))
    db.commit()
