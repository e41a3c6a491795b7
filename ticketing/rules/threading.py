"""Which ticket a message belongs to (Zammad's follow_up_check, as a pure function).

In order: the References/In-Reply-To headers name a message of a ticket;
the subject carries the ticket tag; the body quotes the number after its
label (受付番号, 問合せ番号, ...; ``ticket_number.quoted_numbers`` reads them).
Header references are trusted from anyone (only a participant's mail client
has them); a tag or number alone is trusted only from a participant
of that ticket or a registered contact of its customer, so a stranger cannot
write into someone else's ticket by quoting its number.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class TicketSnapshot:
    """What threading needs to know about a candidate ticket."""

    id: int
    number: str
    closed_at: datetime | None  # None unless the ticket is closed
    # Everyone the thread was from or to (Cc included), and the registered
    # contacts of its customer; lower-cased addresses.
    participants: frozenset[str]
    contact_emails: frozenset[str]


@dataclass(frozen=True)
class ThreadEvidence:
    by_reference: TicketSnapshot | None = None
    by_subject_tag: TicketSnapshot | None = None
    by_body_number: TicketSnapshot | None = None


class ThreadAction(enum.StrEnum):
    JOIN = "join"  # add to the ticket
    REOPEN = "reopen"  # add to the closed ticket and open it again
    NEW = "new"  # open a new ticket
    NEW_LINKED = "new_linked"  # open a new ticket that points at ``ticket``


@dataclass(frozen=True)
class ThreadDecision:
    action: ThreadAction
    ticket: TicketSnapshot | None = None
    rule: str = ""  # which rule decided: "references", "subject_tag", "body_number"
    unregistered_sender: bool = False


def decide_thread(
    evidence: ThreadEvidence, sender: str, received_at: datetime, reopen_days: int
) -> ThreadDecision:
    """Join, reopen or open: the desk's threading rule."""
    sender = sender.lower()
    if evidence.by_reference is not None:
        return _follow_up(evidence.by_reference, "references", received_at, reopen_days)
    for rule, ticket in (
        ("subject_tag", evidence.by_subject_tag),
        ("body_number", evidence.by_body_number),
    ):
        if ticket is None:
            continue
        if sender and (sender in ticket.participants or sender in ticket.contact_emails):
            return _follow_up(ticket, rule, received_at, reopen_days)
        return ThreadDecision(
            ThreadAction.NEW_LINKED, ticket, rule=rule, unregistered_sender=True
        )
    return ThreadDecision(ThreadAction.NEW)


def _follow_up(
    ticket: TicketSnapshot, rule: str, received_at: datetime, reopen_days: int
) -> ThreadDecision:
    if ticket.closed_at is None:
        return ThreadDecision(ThreadAction.JOIN, ticket, rule=rule)
    if received_at - ticket.closed_at <= timedelta(days=reopen_days):
        return ThreadDecision(ThreadAction.REOPEN, ticket, rule=rule)
    return ThreadDecision(ThreadAction.NEW_LINKED, ticket, rule=rule)


def decide_fax_thread(
    ticket: TicketSnapshot | None,
    same_support_number: bool,
    received_at: datetime,
    reopen_days: int,
) -> ThreadDecision:
    """A FAX that quotes 問合せ番号 follows the spine's rule for a quoted number.

    A FAX has no sender address to check against the ticket's participants;
    what vouches for it is the support number on the same page: a FAX whose
    number is that of the ticket joins it, any other opens a new ticket,
    linked and flagged, so a stray FAX never lands in someone else's thread.
    """
    if ticket is None:
        return ThreadDecision(ThreadAction.NEW)
    if not same_support_number:
        return ThreadDecision(
            ThreadAction.NEW_LINKED, ticket, rule="fax_ticket_number", unregistered_sender=True
        )
    return _follow_up(ticket, "fax_ticket_number", received_at, reopen_days)
