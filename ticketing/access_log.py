"""Who opened which ticket, and what of it: a row per view, kept per ``[retention]``.

The web desk writes one when staff open a ticket, one of its files or its
HTML; supervisors and auditors read ``ticket_access_log``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from madoguchi.ticketing.dialect import dialect_of
from madoguchi.ticketing.models import StaffUser
from madoguchi.ticketing.security_models import TicketAccess


def opened(db: Session, user: StaffUser | None, ticket_id: int, what: str,
           now: datetime) -> None:
    """Record the view and commit it (a read has no transaction of its own to join)."""
    if user is None:
        return
    # A view is not a change: its record may commit before the log reaches the disk
    # (on PostgreSQL a crash of the database server can lose the last ~0.6 s of
    # views, never a change), which saves the ticket page a flush (3 ms here).
    dialect_of(db).without_waiting_for_disk(db)
    db.add(TicketAccess(at=now, staff_id=user.id, ticket_id=ticket_id, what=what))
    db.commit()
