"""What a source hands to the pipeline, and what it gets back."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Inbound:
    """One message as a source read it, before anything else is known."""

    raw: bytes
    source: str  # the source's configured name ("support-mailbox", "cli", ...)
    source_ref: str  # where it came from: "INBOX;uidvalidity=7;uid=42", a path
    # When the desk received it, if the source knows (IMAP INTERNALDATE);
    # None lets the pipeline take it from the Received:/Date: headers.
    received_at: datetime | None = None
    # "fax" for documents from a FAX spool or `ingest FILE.pdf`; None for mail.
    kind: str | None = None


class OutcomeKind(enum.StrEnum):
    CREATED = "created"  # opened a new ticket
    THREADED = "threaded"  # joined (or reopened) an existing ticket
    DUPLICATE = "duplicate"  # already ingested: nothing written
    QUARANTINED = "quarantined"  # kept with its reason, no ticket


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    ticket_number: str | None = None
    reason: str | None = None


class Sink(Protocol):
    """The pipeline as a source sees it."""

    def ingest_batch(
        self,
        items: Sequence[Inbound],
        *,
        in_transaction: Callable[[Session], None] | None = None,
    ) -> list[Outcome]:
        """Store every item and commit once for the batch.

        ``in_transaction`` runs inside the same transaction just before the
        commit, so a source can record its position (last UID, marks to make)
        atomically with the messages. Nothing is committed if it raises.
        """
        ...
