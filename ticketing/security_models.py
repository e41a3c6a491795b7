"""What the desk keeps to know who is in and who saw what (ASVS level 2, APPI).

Server-side web sessions (revoked at sign-out, password change and
deactivation), the sign-in attempts that reached the password check, who
opened which ticket, and the history of privacy requests. Registered on
``models.Base`` (``ticketing.models`` imports this module at its end), so
the migrations and ``Base.metadata`` know them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from madoguchi.ticketing.models import Base, StaffUser, UTCDateTime


class WebSession(Base):
    """A signed-in browser: its cookie holds a random token, this row its sha256.

    The row, not the cookie, decides: a session whose row is revoked (sign-out,
    new password, deactivation, a supervisor's revocation) or has run past its
    idle or absolute time is over, whatever cookie a browser still holds.
    """

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the token
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # "sign_out", "password", "disabled", "revoked", "expired"
    revoked_reason: Mapped[str] = mapped_column(String(20), default="")
    client: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(200), default="")

    staff: Mapped[StaffUser] = relationship()


class SignInAttempt(Base):
    """A sign-in whose password was checked (refused ones never reach the table)."""

    __tablename__ = "sign_in_attempts"
    __table_args__ = (Index("ix_sign_in_attempts_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    login: Mapped[str] = mapped_column(String(100))
    client: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool] = mapped_column()


class TicketAccess(Base):
    """Who opened which ticket or file, and when (retained per ``[retention]``)."""

    __tablename__ = "ticket_access_log"
    __table_args__ = (Index("ix_ticket_access_log_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"),
                                           index=True)
    what: Mapped[str] = mapped_column(String(20))  # "ticket", "attachment", "html"


class PrivacyAction(Base):
    """One privacy request carried out: export or erasure of one person's data.

    The person is recorded by the sha256 of the address, never the address
    itself (an erasure that kept it would not be one).
    """

    __tablename__ = "privacy_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(20))  # "export", "erase", "retention"
    subject_sha256: Mapped[str] = mapped_column(String(64), default="", index=True)
    operator: Mapped[str] = mapped_column(String(100), default="")
    summary: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
