"""A reply as it is being typed: saved on the server per agent and ticket (``ticketing.drafts``).

Registered on ``models.Base`` (``ticketing.models`` imports this module at its
end), so the migrations and ``Base.metadata`` know it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from madoguchi.ticketing.models import Base, UTCDateTime


class ReplyDraft(Base):
    """One agent's reply to one ticket, from the first keystroke to its sending.

    ``token`` is the reply form's idempotency key: the reply it sends is queued
    under it once, and the draft then points at the message it became.
    """

    __tablename__ = "reply_drafts"
    __table_args__ = (Index("ix_reply_drafts_ticket_staff", "ticket_id", "staff_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    token: Mapped[str] = mapped_column(String(32), unique=True)
    to: Mapped[str] = mapped_column(Text, default="")
    cc: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set once sent: the outbound message it became.
    sent_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), default=None
    )
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
