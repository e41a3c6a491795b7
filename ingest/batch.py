"""The context a batch of messages is stored in: its transaction, what it made, what it read.

``Staged`` is what the batch has made and not yet committed (its new
tickets and messages, the numbers it handed out, what it acknowledged). The
careful pass takes a ``snapshot`` before each message and restores it when
the message fails, so a failed message leaves no trace in what follows.

``Facts`` is what the batch read from the database, kept so that the rules
get their answers from memory: a chunk's known dedupe keys and referenced
tickets are read in a few queries (``read_ahead``), not one per message.
What was read stays true when a savepoint rolls back (the savepoint only
undoes what the failed message wrote), so facts are never restored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from madoguchi.config import Settings
from madoguchi.ingest.drafts import AnyTicket, NewMessage, NewTicket
from madoguchi.ingest.inbound import Inbound
from madoguchi.ingest.message import ParsedMessage
from madoguchi.ingest.prepare import Prepared
from madoguchi.ticketing import store
from madoguchi.ticketing.blobstore import BlobStore
from madoguchi.ticketing.deadlines import Deadlines
from madoguchi.ticketing.lookup import ticket_by_number
from madoguchi.ticketing.models import Contract, Customer, Ticket
from madoguchi.ticketing.rules.entitlement import ContactFacts, ContractFacts
from madoguchi.ticketing.rules.threading import TicketSnapshot
from madoguchi.ticketing.vocabulary import TicketStatus


@dataclass
class Staged:
    """What the batch has made and not yet committed."""

    known_keys: set[str] = field(default_factory=set)  # dedupe keys stored by this batch
    by_message_id: dict[str, AnyTicket] = field(default_factory=dict)  # its Message-IDs
    by_number: dict[str, AnyTicket] = field(default_factory=dict)  # tickets by number
    participants: dict[str, set[str]] = field(default_factory=dict)  # ticket number → addrs
    quarantined: set[tuple[str, str]] = field(default_factory=set)  # (sha256, reason code)
    counters: dict[int, int] = field(default_factory=dict)  # year → last number handed out
    used_numbers: set[tuple[int, int]] = field(default_factory=set)  # (year, sequence)
    new_tickets: list[tuple[NewTicket, NewMessage]] = field(default_factory=list)
    # Rows not yet written (``rows.write``), in the order they were made.
    tickets: list[NewTicket] = field(default_factory=list)
    messages: list[NewMessage] = field(default_factory=list)
    # Acknowledgements: how many of new_tickets were dealt with, and the
    # batch's count per sender (from the outbox, then counted on) at its time.
    acknowledged: int = 0
    # Stored tickets that an unverified follow-up joined (mail_trust): flagged per chunk.
    unverified_tickets: set[int] = field(default_factory=set)
    ack_counts: Counter[str] | None = None
    ack_now: datetime | None = None

    def snapshot(self) -> Staged:
        """A copy whose containers are new (the tickets and messages in them are shared)."""
        return Staged(**{f.name: _copied(getattr(self, f.name)) for f in fields(self)})

    def restore(self, saved: Staged) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(saved, f.name))


_C = TypeVar("_C")


def _copied(value: _C) -> _C:
    """Containers copied two levels deep (a dict of sets gets new sets); nothing else."""
    copied: Any
    if isinstance(value, dict):
        copied = type(value)({k: _copied(v) for k, v in value.items()})
    elif isinstance(value, set | list):
        copied = type(value)(value)
    else:
        copied = value
    return copied  # type: ignore[no-any-return]  # same type as value, by construction


@dataclass
class Facts:
    """What the batch read from the database, by what it asked."""

    stored_keys: set[str] = field(default_factory=set)  # dedupe keys found stored
    contacts: dict[str, tuple[ContactFacts, ...]] = field(default_factory=dict)  # by address
    contracts: dict[str, ContractFacts | None] = field(default_factory=dict)  # by number
    # Held by the batch: the session's identity map is weak and would
    # otherwise load the same contract again for every ticket.
    contract_rows: dict[int, Contract] = field(default_factory=dict)
    contact_emails: dict[int | None, frozenset[str]] = field(default_factory=dict)
    # A Message-ID → (id of the newest stored message, or outbox row, with it;
    # its ticket id), None when there is none.
    stored_refs: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    outbox_refs: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    tickets_by_id: dict[int, Ticket] = field(default_factory=dict)  # held: the map is weak
    stored_participants: dict[int, frozenset[str]] = field(default_factory=dict)
    companies: dict[int, str] = field(default_factory=dict)  # customer id → company


def message_refs(msg: ParsedMessage) -> list[str]:
    """The Message-IDs a mail names: References, In-Reply-To, a bounce's original."""
    refs = [*msg.references, *msg.in_reply_to]
    if msg.bounced_message_id:
        refs.append(msg.bounced_message_id)
    return refs


@dataclass
class Batch:
    """One batch's transaction and context, handed to every step."""

    session: Session
    settings: Settings
    deadlines: Deadlines
    blobs: BlobStore
    now: Callable[[], datetime]
    # Numbers taken outside the batch's transaction (PostgreSQL), shared by the
    # fast and the careful pass of one batch so neither leaves gaps for the other.
    reserved: dict[int, list[int]]
    # The source's own bookkeeping, run in the batch's transaction before it commits.
    in_transaction: Callable[[Session], None] | None = None
    careful: bool = False  # the careful pass: a savepoint per message
    chunk: list[tuple[Inbound, Prepared]] = field(default_factory=list)  # being stored now
    staged: Staged = field(default_factory=Staged)
    facts: Facts = field(default_factory=Facts)

    # -- what the rules ask ------------------------------------------------

    def is_known(self, key: str) -> bool:
        return key in self.staged.known_keys or key in self.facts.stored_keys

    def contacts(self, address: str) -> tuple[ContactFacts, ...]:
        if address not in self.facts.contacts:
            self.facts.contacts[address] = store.contacts_for_address(self.session, address)
        return self.facts.contacts[address]

    def contract(self, digits: str) -> ContractFacts | None:
        if digits not in self.facts.contracts:
            self.facts.contracts[digits] = store.contract_for_number(self.session, digits)
        return self.facts.contracts[digits]

    def contract_row(self, contract_id: int | None) -> Contract | None:
        if contract_id is None:
            return None
        if contract_id not in self.facts.contract_rows:
            self.facts.contract_rows[contract_id] = self.session.get_one(Contract, contract_id)
        return self.facts.contract_rows[contract_id]

    def company(self, customer_id: int | None) -> str:
        if customer_id is None:
            return ""
        if customer_id not in self.facts.companies:
            self.facts.companies[customer_id] = self.session.get_one(
                Customer, customer_id
            ).company
        return self.facts.companies[customer_id]

    def ticket_by_number(self, number: str) -> AnyTicket | None:
        """The ticket with that number (or the one it was merged into), new ones included."""
        if number not in self.staged.by_number:
            found = ticket_by_number(self.session, number, follow_merges=True)
            if found is None:
                return None
            self.staged.by_number[number] = found
        return self.staged.by_number[number]

    def first_ticket(self, numbers: Iterable[str]) -> AnyTicket | None:
        for number in numbers:
            ticket = self.ticket_by_number(number)
            if ticket is not None:
                return ticket
        return None

    def ticket_by_refs(self, refs: list[str]) -> AnyTicket | None:
        """The ticket of the newest message among ``refs``: this batch's, else a stored one."""
        for ref in reversed(refs):  # the newest reference is the most specific
            if ref in self.staged.by_message_id:
                return self.staged.by_message_id[ref]
        # Else the ticket of the newest stored message among them, as
        # store.ticket_by_message_ids has it (a reply to the desk's own mail:
        # the outbox knows its ticket), from what read_ahead found.
        self._look_up_refs(refs)
        facts = self.facts
        found = [f for r in refs if r and (f := facts.stored_refs[r]) is not None]
        if not found:
            found = [f for r in refs if r and (f := facts.outbox_refs[r]) is not None]
        if not found:
            return None
        ticket_id = max(found)[1]
        if ticket_id not in facts.tickets_by_id:
            ticket = self.session.get(Ticket, ticket_id)
            if ticket is None:
                return None
            facts.tickets_by_id[ticket_id] = ticket
        return facts.tickets_by_id[ticket_id]

    def snapshot_of(self, ticket: AnyTicket) -> TicketSnapshot:
        """What threading needs to know of ``ticket``: stored and this batch's participants."""
        desk = self.settings.desk_address.lower()
        stored: frozenset[str] = frozenset()
        facts = self.facts
        if ticket.id is not None:
            if ticket.id not in facts.stored_participants:
                facts.stored_participants.update(
                    store.participants_of(self.session, [ticket.id], self.settings.desk_address)
                )
            stored = facts.stored_participants[ticket.id]
        extra = self.staged.participants.get(ticket.number, set()) - {desk}
        if ticket.customer_id not in facts.contact_emails:
            facts.contact_emails[ticket.customer_id] = store.contact_emails(
                self.session, ticket.customer_id
            )
        return TicketSnapshot(
            id=ticket.id or 0,
            number=ticket.number,
            closed_at=ticket.closed_at if ticket.status == TicketStatus.CLOSED else None,
            participants=stored | extra,
            contact_emails=facts.contact_emails[ticket.customer_id],
        )

    # -- reading ahead -----------------------------------------------------

    def read_ahead(self, keys: list[str], messages: list[ParsedMessage]) -> None:
        """What the next messages need from the database, in a few queries.

        Which of their dedupe keys are stored; the stored messages (else the
        desk's own mail) their References name, those tickets, and the
        tickets' participants. Ids that name a message of this batch are not
        looked up: the batch knows them first.
        """
        self.facts.stored_keys.update(store.stored_dedupe_keys(self.session, keys))
        refs = [r for m in messages for r in message_refs(m) if r not in self.staged.by_message_id]
        if not refs:
            return
        self._look_up_refs(refs)
        facts = self.facts
        ticket_ids = {
            found[1]
            for r in refs
            for found in (facts.stored_refs.get(r), facts.outbox_refs.get(r))
            if found is not None
        }
        loading = [t for t in ticket_ids if t not in facts.tickets_by_id]
        facts.tickets_by_id.update(store.tickets_by_ids(self.session, loading))
        asking = [t for t in ticket_ids if t not in facts.stored_participants]
        facts.stored_participants.update(
            store.participants_of(self.session, asking, self.settings.desk_address)
        )

    def _look_up_refs(self, refs: list[str]) -> None:
        facts = self.facts
        new = [r for r in refs if r and r not in facts.stored_refs]
        if new:
            found = store.newest_by_message_id(self.session, new)
            facts.stored_refs.update((r, found.get(r)) for r in new)
        unknown = [
            r for r in refs if r and facts.stored_refs[r] is None and r not in facts.outbox_refs
        ]
        if unknown:
            found = store.newest_outbox_by_message_id(self.session, unknown)
            facts.outbox_refs.update((r, found.get(r)) for r in unknown)
