"""What the desk keeps so that staff see each other at work: the change feed, presence.

``ticket_changes`` is SQLite's change feed: one row per ticket changed in a
committed transaction (the ingest, a desk action, the daemon), read by one
poller per web process (``ticketing.change_feed``); PostgreSQL uses
LISTEN/NOTIFY instead and leaves the table empty. ``desk_presence`` is who
has a ticket open, and who is typing a reply on it, one row per open page,
kept alive by its live connection's beat. Registered on ``models.Base``
(``ticketing.models`` imports this module at its end).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from madoguchi.ticketing.models import Base, UTCDateTime


class TicketChange(Base):
    """A ticket changed (``kind`` "ticket") or who is on it changed ("presence")."""

    __tablename__ = "ticket_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No foreign key: a row outlives nothing it names, and is pruned within minutes.
    ticket_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Presence(Base):
    """One open ticket page of one member of staff, while its live connection beats."""

    __tablename__ = "desk_presence"
    __table_args__ = (Index("ix_desk_presence_ticket", "ticket_id", "seen_at"),)

    # Random, one per open page (a second tab is a second row).
    view_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    typing_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
