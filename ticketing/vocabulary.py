"""The desk's words as values: ticket status, channel, direction, role, flag, inquiry kind.

Plain enums with no database behind them, so that the pure rules in
``ticketing/rules`` can speak them; ``ticketing.models`` stores them.
"""

from __future__ import annotations

import enum


class TicketStatus(enum.StrEnum):
    OPEN = "open"
    PENDING = "pending"
    CLOSED = "closed"


class ConversationState(enum.StrEnum):
    """Where the conversation stands, whose turn it is (``rules.conversation`` moves it).

    ``TicketStatus`` is its coarse reading (``rules.conversation.status_of``):
    open (the desk's turn), pending (the customer's, or on hold), closed.
    """

    NEW = "new"  # arrived; nobody at the desk has taken it yet
    OPEN = "open"  # the desk is on it; the first response is due until given
    WAITING = "waiting"  # answered: waiting for the customer (回答済・お客様の返信待ち)
    PENDING = "pending"  # on hold (保留), until a reminder date when one is set
    CUSTOMER_REPLIED = "customer_replied"  # the customer wrote again: the next response is due
    SOLVED = "solved"  # solved; closed by itself after a silence (auto-close)
    CLOSED = "closed"


class Channel(enum.StrEnum):
    EMAIL = "email"
    FAX = "fax"
    PHONE = "phone"
    NOTE = "note"


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"
    NOTE = "note"  # an internal note: never sent to the customer


class Role(enum.StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"


class Flag(enum.StrEnum):
    """Why staff look at a ticket before working it (the ticket is opened all the same)."""

    UNREGISTERED_SENDER = "unregistered_sender"
    UNKNOWN_SUPPORT_NUMBER = "unknown_support_number"
    CONTRACT_EXPIRED = "contract_expired"
    UNREADABLE_FAX = "unreadable_fax"
    # Written before support begins (before the licence purchase, the trial's notice).
    CONTRACT_NOT_STARTED = "contract_not_started"
    # Mail that joined a ticket without the desk's mail server vouching for its sender,
    # or from someone not of the thread who named it by a reference header.
    UNVERIFIED_SENDER = "unverified_sender"
    # A customer's follow-up that says it is urgent (至急, 緊急...): until the desk responds.
    URGENT = "urgent"
    # Mail of ours to the customer (a reply, the acknowledgement) that did not reach them:
    # refused, given up, state unknown, or bounced (ticketing.delivery sets and clears it).
    UNDELIVERED = "undelivered"


# What the desk does not promise a response to until staff accept the ticket:
# not a registered contact of the contract, or no support period on that day.
OUT_OF_SCOPE = frozenset(
    {Flag.UNREGISTERED_SENDER, Flag.CONTRACT_EXPIRED, Flag.CONTRACT_NOT_STARTED}
)


class InquiryKind(enum.StrEnum):
    """Which first-response rule of the product an inquiry gets."""

    GENERAL = "general"  # "the next business hours" as the product defines them
    LICENSE_KEY = "license_key"  # ライセンスキー: received before the cut-off, that day
