"""The rows a batch is about to write: new tickets, and the messages it stores.

Typed stand-ins for ``Ticket`` and ``Message`` while their rows are not yet
written: the rules, the threading of later messages in the same batch and
the acknowledgement read them as they would the stored ones. ``rows``
writes them with one multi-row INSERT per table (SQLAlchemy Core: the ORM's
unit of work cost more main-process CPU than all the rules together).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from madoguchi.ticketing.models import Ticket
from madoguchi.ticketing.search_index import message_text
from madoguchi.ticketing.vocabulary import (
    Channel,
    ConversationState,
    Direction,
    Flag,
    InquiryKind,
    TicketStatus,
)


@dataclass(eq=False)
class NewTicket:
    """A ticket the batch opens, read like a ``Ticket`` by the rules and the acknowledgement.

    The steps fill it in order (placement, numbering, deadline); its row is
    written with its chunk (or in its message's savepoint in the careful
    pass), which sets ``id``.
    """

    channel: Channel
    subject: str
    support_number: str | None  # the contract's
    support_number_written: str | None  # what the message gave
    customer_id: int | None
    contract_id: int | None
    contact_id: int | None
    received_at: datetime
    company: str  # of its customer, "" when none: the acknowledgement names it
    number: str = ""  # given by the numbering step
    work_starts_at: datetime | None = None  # given by the deadline step
    first_response_due: datetime | None = None
    flags: set[Flag] = field(default_factory=set)
    flag_details: dict[Flag, str] = field(default_factory=dict)  # what staff read beside them
    product: str | None = None  # given by placement: whose terms (None: the default product)
    inquiry_kind: InquiryKind | None = None  # given by the deadline step
    linked_ticket: Ticket | NewTicket | None = None
    id: int | None = None
    status: TicketStatus = TicketStatus.OPEN
    closed_at: datetime | None = None

    @property
    def flag_names(self) -> list[str]:
        return sorted(f.value for f in self.flags)

    def row(self) -> dict[str, object]:
        linked = self.linked_ticket
        return {
            "number": self.number,
            "status": self.status,
            "channel": self.channel,
            "subject": self.subject,
            "support_number": self.support_number,
            "support_number_written": self.support_number_written,
            "customer_id": self.customer_id,
            "contract_id": self.contract_id,
            "contact_id": self.contact_id,
            "received_at": self.received_at,
            "work_starts_at": self.work_starts_at,
            "first_response_due": self.first_response_due,
            "product": self.product,
            "inquiry_kind": self.inquiry_kind,
            "first_responded_at": None,
            "closed_at": self.closed_at,
            # A new conversation: the deadline still open is the first response's.
            "state": ConversationState.NEW,
            "response_due": self.first_response_due,
            "escalated_at": None,
            "assignee_id": None,
            "merged_into_id": None,
            # A ticket of the same statement has no id yet: set just after.
            "linked_ticket_id": linked.id if linked is not None else None,
        }


AnyTicket = Ticket | NewTicket


@dataclass(frozen=True, slots=True)
class NewAttachment:
    """An attachments row but its message_id; the bytes are in the blob store already."""

    sha256: str
    size: int
    content_type: str
    filename: str
    original_filename: str

    def row(self, message_id: int) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in _ATTACHMENT_COLUMNS}
        values["message_id"] = message_id
        return values


@dataclass(frozen=True, slots=True)
class NewRaw:
    """The raw_messages row of a stored message: where its original bytes came from."""

    sha256: str
    size: int
    source: str
    source_ref: str
    received_at: datetime

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _RAW_COLUMNS}


@dataclass(eq=False, slots=True)
class NewMessage:
    """An inbound message the batch stores; read like a ``Message`` by the acknowledgement.

    Its fields are the columns of its ``messages`` row, but ``ticket_id`` and
    ``raw_id``, which are known once the rows before it are written.
    """

    ticket: AnyTicket
    raw: NewRaw
    attachments: tuple[NewAttachment, ...]
    direction: Direction
    channel: Channel
    dedupe_key: str
    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    sender: str
    sender_name: str
    recipients: list[str]
    cc: list[str]
    subject: str
    date: datetime | None
    received_at: datetime
    text: str
    html: str | None
    auto_kind: str | None
    fax_reading: dict[str, object] | None
    author_id: None = None
    unverified_sender: bool = False

    def row(self, ticket_id: int, raw_id: int) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in _MESSAGE_COLUMNS}
        values["ticket_id"], values["raw_id"] = ticket_id, raw_id
        values["search_text"] = message_text(self)  # a Core INSERT: no ORM event sets it
        return values


_ATTACHMENT_COLUMNS = tuple(f.name for f in fields(NewAttachment))
_RAW_COLUMNS = tuple(f.name for f in fields(NewRaw))
# Every field of NewMessage but those that are rows of their own.
_MESSAGE_COLUMNS = tuple(
    f.name for f in fields(NewMessage) if f.name not in ("ticket", "raw", "attachments")
)
