"""One inbound message on its way through the steps, and what a step is.

A step is a small function of the batch and the arrival: it reads what the
earlier steps found, adds what it finds, and either lets the message go on
(returns None) or ends its way with an ``Outcome`` (a duplicate, a
quarantine, a ticket created or joined). The order of the steps is written
down once, in ``ingest.steps``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from madoguchi.ingest.batch import Batch
from madoguchi.ingest.drafts import AnyTicket, NewTicket
from madoguchi.ingest.fax import FaxPrepared
from madoguchi.ingest.inbound import Inbound, Outcome
from madoguchi.ingest.message import ParsedMessage
from madoguchi.ingest.prepare import Prepared
from madoguchi.ticketing.models import Contract
from madoguchi.ticketing.rules.autoreply import AutoKind
from madoguchi.ticketing.rules.entitlement import ContactFacts, Entitlement
from madoguchi.ticketing.rules.threading import ThreadAction, ThreadDecision

_OPENS = (ThreadAction.NEW, ThreadAction.NEW_LINKED)


@dataclass
class Arrival:
    """What the steps know of one message so far; each field is set by the step named."""

    item: Inbound
    prepared: Prepared
    received_at: datetime | None = None  # received
    sender: str = ""  # authenticity: the From address, "" when it is forged
    vouched: bool = False  # authenticity: the desk's own MTA says DMARC passed
    unverified: bool = False  # mail_trust: joins a thread its sender was not vouched for
    auto: AutoKind | None = None  # autoreply: machine-written mail, and its kind
    # threading: the decision, and the candidate tickets by number
    decision: ThreadDecision | None = None
    candidates: dict[str, AnyTicket] = field(default_factory=dict)
    # fax_sender: the registered contacts whose FAX number sent the page
    sender_contacts: tuple[ContactFacts, ...] = ()
    support_number: str | None = None  # support_number: a check-digit-valid number
    written_number: str | None = None  # ... and the digits as written, even if invalid
    rights: Entitlement | None = None  # entitlement
    contract: Contract | None = None  # placement: the new ticket's contract
    ticket: AnyTicket | None = None  # placement: where the message goes
    new_ticket: NewTicket | None = None  # placement: ... when it opens a ticket

    @property
    def mail(self) -> ParsedMessage:
        """The parsed mail (a FAX from a gateway has one too; a FAX document has none)."""
        assert self.prepared.message is not None
        return self.prepared.message

    @property
    def fax(self) -> FaxPrepared:
        assert self.prepared.fax is not None
        return self.prepared.fax

    @property
    def when(self) -> datetime:
        assert self.received_at is not None
        return self.received_at

    @property
    def target(self) -> AnyTicket | None:
        """The existing ticket the thread decision names (joined, reopened, or linked)."""
        decision = self.decision
        if decision is None or decision.ticket is None:
            return None
        return self.candidates[decision.ticket.number]

    @property
    def opens_ticket(self) -> bool:
        return self.decision is not None and self.decision.action in _OPENS


class Step(NamedTuple):
    """A named step of a message's path: None lets the message go on, an Outcome ends it."""

    name: str
    run: Callable[[Batch, Arrival], Outcome | None]


class BatchStep(NamedTuple):
    """A named step run once per chunk of messages, or once per batch."""

    name: str
    run: Callable[[Batch], None]
