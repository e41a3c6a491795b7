"""What the desk keeps: customers, contracts, contacts, tickets, messages.

Times are stored as UTC (timezone-aware on PostgreSQL; SQLite keeps the
naive UTC value and ``UTCDateTime`` gives it back aware).
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from madoguchi.ticketing.rules.periods import (
    Period,
    PeriodKind,
    Plan,
    PlanTerms,
    Standing,
    standing_on,
)

# The desk's vocabulary, stored here; imported from here too (explicitly re-exported).
from madoguchi.ticketing.vocabulary import Channel as Channel
from madoguchi.ticketing.vocabulary import ConversationState as ConversationState
from madoguchi.ticketing.vocabulary import Direction as Direction
from madoguchi.ticketing.vocabulary import Flag as Flag
from madoguchi.ticketing.vocabulary import InquiryKind as InquiryKind
from madoguchi.ticketing.vocabulary import Role as Role
from madoguchi.ticketing.vocabulary import TicketStatus as TicketStatus

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A moment, stored in UTC, always returned timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table_of(model: type[Base]) -> Table:
    """The table a model is mapped to (for Core statements on it)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings: adding a value needs no ALTER TYPE on PostgreSQL.
    return Enum(cls, name=name, native_enum=False, length=32,
                values_callable=lambda e: [m.value for m in e])


class StaffUser(Base):
    """A person at the desk who signs in to the web desk."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_enum(Role, "staff_role"))
    active: Mapped[bool] = mapped_column(default=True)
    # The web desk's language for this person ("ja", "en"; web.i18n.LOCALES).
    locale: Mapped[str] = mapped_column(String(8), default="ja", server_default="ja")


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    company: Mapped[str] = mapped_column(String(200), unique=True)
    department: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(400), default="")
    search_key: Mapped[str] = mapped_column(Text, default="")  # ticketing.search_index

    contracts: Mapped[list[Contract]] = relationship(back_populates="customer")
    contacts: Mapped[list[Contact]] = relationship(back_populates="customer")


contract_contacts = Table(
    "contract_contacts",
    Base.metadata,
    Column("contract_id", ForeignKey("contracts.id", ondelete="CASCADE"), primary_key=True),
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
)


class Contract(Base):
    __tablename__ = "contracts"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    # Digits only, normalised (no hyphens): the key customers quote.
    support_number: Mapped[str] = mapped_column(String(32), unique=True)
    # The product's name as configured ([[products]] name or alias); "" or an
    # unknown name: the desk's default product.
    product: Mapped[str] = mapped_column(String(200), default="")
    environment: Mapped[str] = mapped_column(Text, default="")
    # The span of the stored periods (first start, last end), kept for lists;
    # entitlement asks the periods themselves (``periods``, ``standing_on``).
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    # Contract terms that override the desk's default first-response policy.
    sla_override: Mapped[dict[str, object] | None] = mapped_column(JSON, default=None)
    # How the periods are computed (rules.periods), and the dates they come from.
    plan: Mapped[Plan] = mapped_column(_enum(Plan, "contract_plan"), default=Plan.CERTIFICATE)
    ordered_on: Mapped[date | None] = mapped_column(Date, default=None)
    purchased_on: Mapped[date | None] = mapped_column(Date, default=None)
    notified_on: Mapped[date | None] = mapped_column(Date, default=None)
    cancelled_on: Mapped[date | None] = mapped_column(Date, default=None)
    # What the vendors ask for (契約コード, 貴部署名, 所在地, ご使用環境), per contract.
    contract_code: Mapped[str] = mapped_column(String(100), default="")
    department: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(400), default="")
    server_os: Mapped[str] = mapped_column(String(200), default="")
    web_server: Mapped[str] = mapped_column(String(200), default="")
    version: Mapped[str] = mapped_column(String(200), default="")
    users: Mapped[int | None] = mapped_column(Integer, default=None)

    customer: Mapped[Customer] = relationship(back_populates="contracts")
    contacts: Mapped[list[Contact]] = relationship(
        secondary=contract_contacts, back_populates="contracts"
    )
    periods: Mapped[list[ContractPeriod]] = relationship(
        back_populates="contract", cascade="all, delete-orphan",
        order_by="ContractPeriod.starts_on",
    )

    @property
    def terms(self) -> PlanTerms:
        return PlanTerms(self.plan, self.ordered_on, self.purchased_on, self.notified_on,
                         self.cancelled_on)

    @property
    def stored_periods(self) -> tuple[Period, ...]:
        return tuple(p.as_period() for p in self.periods)

    def in_force_on(self, day: date) -> bool:
        if not self.periods:  # not yet flushed: the span it was given
            return self.period_start <= day <= self.period_end
        return standing_on(day, self.stored_periods, self.terms)[0] is Standing.IN_FORCE


class ContractPeriod(Base):
    """One support period of a contract: the history, never overwritten by an import."""

    __tablename__ = "contract_periods"
    __table_args__ = (UniqueConstraint("contract_id", "starts_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(
        ForeignKey("contracts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[PeriodKind] = mapped_column(_enum(PeriodKind, "period_kind"))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    # Support given before the period starts (ChatLuck: from the first licence purchase).
    support_from: Mapped[date | None] = mapped_column(Date, default=None)
    # How it came: "migration", "import", "renewal", "desk".
    origin: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    contract: Mapped[Contract] = relationship(back_populates="periods")

    def as_period(self) -> Period:
        return Period(self.kind, self.starts_on, self.ends_on, self.support_from)


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(50), default="")
    fax: Mapped[str] = mapped_column(String(50), default="")
    search_key: Mapped[str] = mapped_column(Text, default="")  # ticketing.search_index

    customer: Mapped[Customer] = relationship(back_populates="contacts")
    emails: Mapped[list[ContactEmail]] = relationship(
        back_populates="contact", cascade="all, delete-orphan"
    )
    contracts: Mapped[list[Contract]] = relationship(
        secondary=contract_contacts, back_populates="contacts"
    )


class ContactEmail(Base):
    __tablename__ = "contact_emails"
    __table_args__ = (UniqueConstraint("contact_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    # Lower-cased: addresses are matched case-insensitively.
    email: Mapped[str] = mapped_column(String(320), index=True)

    contact: Mapped[Contact] = relationship(back_populates="emails")


class TicketCounter(Base):
    """The last sequence number handed out per year (T-YEAR-SEQUENCE)."""

    __tablename__ = "ticket_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_status_due", "status", "first_response_due"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[TicketStatus] = mapped_column(_enum(TicketStatus, "ticket_status"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    subject: Mapped[str] = mapped_column(Text, default="")
    # The number of the ticket's contract (validated), None while it has none.
    support_number: Mapped[str | None] = mapped_column(String(32), default=None)
    # The digits the customer wrote (or the FAX page showed), check digit or
    # not, whether or not they name a contract; None when they gave none.
    support_number_written: Mapped[str | None] = mapped_column(String(32), default=None)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When work can first start (the next opening) and when the first
    # response is due, on the business calendar and the contract's terms.
    work_starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    first_response_due: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    first_responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_users.id"), index=True, default=None
    )
    # The product whose terms the ticket gets (its contract's, else the mailbox's;
    # None: the desk's default) and which of its rules (inquiry kind).
    product: Mapped[str | None] = mapped_column(String(200), default=None)
    inquiry_kind: Mapped[InquiryKind | None] = mapped_column(
        _enum(InquiryKind, "inquiry_kind"), default=None
    )
    # A ticket merged into another (a mistaken new ticket) points at it.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), default=None)
    # A follow-up too late to reopen a closed ticket, or one from a stranger,
    # opens a new ticket that points back at the one it named.
    linked_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), default=None)
    # The conversation (ticketing.conversation; status is its coarse reading): its state,
    # the next-response due after a customer's reply, the pending ticket's reminder date,
    # and the deadline still open (first or next response), which the queue sorts by.
    state: Mapped[ConversationState] = mapped_column(
        _enum(ConversationState, "conversation_state"), default=ConversationState.NEW)
    response_due: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    next_response_due: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    customer_replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    pending_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    solved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Staff's: "low", "normal", "high", "urgent" (ticketing.ticket_fields), and tags.
    priority: Mapped[str] = mapped_column(String(10), default="normal", server_default="normal")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    triage_flags: Mapped[int] = mapped_column(Integer, server_default="0")  # triggers: 0016

    customer: Mapped[Customer | None] = relationship()
    contract: Mapped[Contract | None] = relationship()
    contact: Mapped[Contact | None] = relationship()
    linked_ticket: Mapped[Ticket | None] = relationship(
        remote_side=[id], foreign_keys=[linked_ticket_id]
    )
    assignee: Mapped[StaffUser | None] = relationship()
    # Loaded on access; lists that show flags ask for them (selectinload).
    flags: Mapped[list[TicketFlag]] = relationship(
        back_populates="ticket", cascade="all, delete-orphan"
    )
    messages: Mapped[list[Message]] = relationship(
        back_populates="ticket", order_by="Message.received_at, Message.id"
    )

    @property
    def flag_names(self) -> list[str]:
        return sorted(f.flag.value for f in self.flags)


class TicketFlag(Base):
    __tablename__ = "ticket_flags"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    flag: Mapped[Flag] = mapped_column(_enum(Flag, "ticket_flag"), primary_key=True, index=True)
    # What staff should know about it (e.g. the sender is the contact of another contract).
    detail: Mapped[str | None] = mapped_column(Text, default=None)

    ticket: Mapped[Ticket] = relationship(back_populates="flags")


class RawMessage(Base):
    """The original bytes of an inbound message, kept unaltered in the blob store."""

    __tablename__ = "raw_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(200))
    source_ref: Mapped[str] = mapped_column(String(500), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    direction: Mapped[Direction] = mapped_column(_enum(Direction, "direction"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    # Idempotence: the same message read twice (re-poll, crash, re-submit)
    # yields the same key; see ingest.pipeline.dedupe_key.
    dedupe_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(Text, default=None)
    references: Mapped[list[str]] = mapped_column(JSON, default=list)
    sender: Mapped[str] = mapped_column(String(320), default="")
    sender_name: Mapped[str] = mapped_column(String(400), default="")
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    cc: Mapped[list[str]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    date: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str | None] = mapped_column(Text, default=None)
    search_text: Mapped[str] = mapped_column(Text, default="")  # ticketing.search_index
    # For a FAX: how the support number was read (method, confidence, each
    # method's read, problems), so staff and audits can see why.
    fax_reading: Mapped[dict[str, object] | None] = mapped_column(JSON, default=None)
    # "auto_reply", "bounce" or "bulk" for machine-sent mail kept on a ticket.
    auto_kind: Mapped[str | None] = mapped_column(String(20), default=None)
    raw_id: Mapped[int | None] = mapped_column(ForeignKey("raw_messages.id"), default=None)
    # Who at the desk wrote an outbound message or note.
    author_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), default=None)
    # The desk could not vouch for the sender (a forged From, or a stranger
    # who named the thread): flagged for staff, never the reply's default To.
    unverified_sender: Mapped[bool] = mapped_column(default=False)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")
    raw: Mapped[RawMessage | None] = relationship()
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", order_by="Attachment.id", lazy="selectin"
    )


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(200))
    # Safe for any file system and Content-Disposition; the original is kept too.
    filename: Mapped[str] = mapped_column(String(255))
    original_filename: Mapped[str] = mapped_column(Text, default="")

    message: Mapped[Message] = relationship(back_populates="attachments")


class QuarantineEntry(Base):
    """Input the desk could not take as a ticket message, kept with its reason."""

    __tablename__ = "quarantine"
    __table_args__ = (UniqueConstraint("sha256", "reason_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(200))
    source_ref: Mapped[str] = mapped_column(String(500), default="")
    # A short machine code ("too_large", "unparseable", "auto_reply", ...)
    # and the sentence staff read.
    reason_code: Mapped[str] = mapped_column(String(40), index=True)
    reason: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class MailboxState(Base):
    """Where IMAP polling left off, per source and folder.

    ``last_uid`` is the highest UID handed out: stored, or waiting in an
    ``IngestClaim``.
    """

    __tablename__ = "mailbox_state"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    folder: Mapped[str] = mapped_column(String(500), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)


class IngestClaim(Base):
    """A range of UIDs handed out for one poller to store, until it commits them.

    Claims are written in the transaction that advances ``MailboxState.last_uid``
    and deleted in the transaction that stores their messages, so every UID up
    to ``last_uid`` is either stored or in a claim. A poller that dies leaves
    its claim for any other (or its own next run) to take.
    """

    __tablename__ = "ingest_claims"
    __table_args__ = (Index("ix_ingest_claims_folder", "source", "folder", "uidvalidity", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(200))
    folder: Mapped[str] = mapped_column(String(500))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    first_uid: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Replies held back until the claims before them are stored (see
    # ingest.sources.imap): taken only once no older claim is left.
    deferred: Mapped[bool] = mapped_column(default=False)


class PendingMark(Base):
    """A message committed but not yet moved/flagged on the IMAP server.

    Written in the same transaction as the message, removed once the server
    has it; a crash in between leaves the row, and the next poll finishes it.
    """

    __tablename__ = "imap_pending_marks"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    folder: Mapped[str] = mapped_column(String(500), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    uid: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class SourceFailure(Base):
    """A source whose polls fail: there from its first failed poll to its next good one.

    Written by the daemon in a short transaction of its own after each failed
    poll, so that ``madoguchi status`` in any process shows the source backing
    off; deleted by the first poll that succeeds.
    """

    __tablename__ = "source_failures"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)  # failed polls in a row
    failing_since: Mapped[datetime] = mapped_column(UTCDateTime)  # the first of them
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # One line, cut to the column's length (ingest.sources.backoff).
    last_error: Mapped[str] = mapped_column(String(300))


class DaemonLeader(Base):
    """The leader's lease: one row, its epoch raised by each daemon that takes the lead.

    The epoch is the fencing token (``ticketing.leadership``): a scheduled job
    or an outbox claim acts only while the epoch it was started under is
    still the row's, so a leader that lost its lock stops at its next step.
    """

    __tablename__ = "daemon_leader"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    epoch: Mapped[int] = mapped_column(BigInteger)
    holder: Mapped[str | None] = mapped_column(String(200))  # host:pid of the leader
    acquired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Heartbeat(Base):
    """A daemon's component (scheduler, a source's polls, the outbox, workers...) beating.

    Written every few seconds by the daemon (``madoguchi.supervision``);
    ``late_at`` is when the component counts as LATE without a newer beat.
    """

    __tablename__ = "daemon_heartbeats"

    daemon: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid
    component: Mapped[str] = mapped_column(String(200), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    late_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(String(300))


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"  # to be sent (again, after next_attempt_at)
    SENDING = "sending"  # claimed, SMTP up to RCPT; a crash here: sent again after the lease
    DELIVERING = "delivering"  # DATA under way; a crash here leaves it for staff, never resent
    SENT = "sent"
    FAILED = "failed"  # gave up after the configured attempts, or refused for good
    CANCELLED = "cancelled"  # taken back by a supervisor before it was sent (never sent)


class OutboxMessage(Base):
    """Outgoing mail, written in the same transaction as the change that causes it.

    A sender process delivers it afterwards (transactional outbox), so a
    rolled-back change never sends mail and a committed one always does.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    # "ack", "reply", "reminder", "escalation"
    kind: Mapped[str] = mapped_column(String(20))
    # At most one row per purpose (e.g. "ack:T-2026-000123"): enqueueing twice
    # after a crash and retry is a no-op.
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    message_id: Mapped[str] = mapped_column(String(998))
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_to: Mapped[list[str]] = mapped_column(JSON)
    raw: Mapped[bytes] = mapped_column(LargeBinary)  # the complete message as sent
    status: Mapped[OutboxStatus] = mapped_column(_enum(OutboxStatus, "outbox_status"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    # What the receiving server answered to the message (e.g. "250 2.0.0 Ok: queued as …").
    server_reply: Mapped[str | None] = mapped_column(Text, default=None)
    # A bounce (DSN) of this mail that came back: when, what it said, its Message-ID.
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    bounce_detail: Mapped[str | None] = mapped_column(Text, default=None)
    bounce_message_id: Mapped[str | None] = mapped_column(String(998), default=None)
    # Who took it back (status cancelled), or last asked for it to be sent again.
    handled_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), default=None)


# Sessions, sign-in attempts, the access log, privacy actions, the tickets' history:
# their own modules.
from madoguchi.ticketing import conversation_models as conversation_models  # noqa: E402

# Reply drafts (saved while typing): their own module.
from madoguchi.ticketing import draft_models as draft_models  # noqa: E402

# Who is on a ticket, and the change feed of the live desk: their own module.
from madoguchi.ticketing import live_models as live_models  # noqa: E402
from madoguchi.ticketing import search_index as search_index  # noqa: E402
from madoguchi.ticketing import security_models as security_models  # noqa: E402

# Text modules, signatures, phone calls: the agent's toolkit.
from madoguchi.ticketing import toolkit_models as toolkit_models  # noqa: E402
