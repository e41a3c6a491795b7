"""What the agent's toolkit keeps: text modules (定型文, macros), signatures, phone calls."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from madoguchi.ticketing.models import Base, Message, UTCDateTime


class TextModule(Base):
    """A stock text with placeholders ({会社名}, {お客様名}…); a macro also sets status/assignee."""

    __tablename__ = "text_modules"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200), unique=True)
    body: Mapped[str] = mapped_column(Text)
    # The product it is for (a configured name); "": every product.
    product: Mapped[str] = mapped_column(String(200), default="")
    # A macro: the status set and whom the ticket goes to when the reply is sent
    # ("" leaves it; "me": the agent who sends).
    set_status: Mapped[str] = mapped_column(String(20), default="")
    set_assignee: Mapped[str] = mapped_column(String(20), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Signature(Base):
    """A product's reply signature as supervisors wrote it ("" : the default product)."""

    __tablename__ = "signatures"

    product: Mapped[str] = mapped_column(String(200), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PhoneCall(Base):
    """The call behind a phone message: who called whom, for how long."""

    __tablename__ = "phone_calls"

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    # "in": the customer called the desk; "out": the desk called.
    direction: Mapped[str] = mapped_column(String(3))
    # The customer's side of the call: their name and number.
    party: Mapped[str] = mapped_column(String(200), default="")
    number: Mapped[str] = mapped_column(String(50), default="")
    duration_seconds: Mapped[int | None] = mapped_column(Integer, default=None)

    message: Mapped[Message] = relationship()
