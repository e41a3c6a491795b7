"""Which ticket a message continues: the evidence, and the thread decision.

Mail: its References/In-Reply-To, else the ``[T-…]``/``【T-…】`` tag in its
subject, else the number quoted after its label (受付番号：T-…, 問合せ番号 …,
``threading.ticket_labels``) in its subject or body (the first that names a ticket);
``ticketing.rules.threading.decide_thread`` then joins, reopens or opens.
A FAX: the 問合せ番号 its page quotes, vouched for by the support number on
the same page (``decide_fax_thread``).
"""

from __future__ import annotations

from madoguchi.ingest.arrival import Arrival, Step
from madoguchi.ingest.batch import Batch, message_refs
from madoguchi.ingest.drafts import AnyTicket
from madoguchi.ingest.inbound import Outcome
from madoguchi.ticketing.rules.threading import (
    ThreadEvidence,
    TicketSnapshot,
    decide_fax_thread,
    decide_thread,
)
from madoguchi.ticketing.ticket_number import quoted_numbers, subject_tags


def _evidence(batch: Batch, arrival: Arrival) -> ThreadEvidence:
    msg = arrival.mail
    prefix, labels = batch.settings.threading.ticket_prefix, batch.settings.threading.ticket_labels
    refs = message_refs(msg)
    by_ref = batch.ticket_by_refs(refs) if refs else None
    by_tag = by_body = None
    if by_ref is None:
        by_tag = batch.first_ticket(subject_tags(msg.subject, prefix))
        if by_tag is None:
            # A labelled number counts in the subject too ("Re: 受付番号 T-… の件").
            quoted = quoted_numbers(msg.subject + "\n" + msg.text, prefix, labels)
            by_body = batch.first_ticket(quoted)
    arrival.candidates = {t.number: t for t in (by_ref, by_tag, by_body) if t is not None}

    def snap(ticket: AnyTicket | None) -> TicketSnapshot | None:
        return batch.snapshot_of(ticket) if ticket is not None else None

    return ThreadEvidence(
        by_reference=snap(by_ref), by_subject_tag=snap(by_tag), by_body_number=snap(by_body)
    )


def _mail(batch: Batch, arrival: Arrival) -> Outcome | None:
    evidence = _evidence(batch, arrival)
    arrival.decision = decide_thread(
        evidence, arrival.sender, arrival.when, batch.settings.threading.reopen_days
    )
    return None


def _fax(batch: Batch, arrival: Arrival) -> Outcome | None:
    fax = arrival.fax
    target = batch.ticket_by_number(fax.ticket_number) if fax.ticket_number else None
    if target is not None:
        arrival.candidates = {target.number: target}
    arrival.decision = decide_fax_thread(
        batch.snapshot_of(target) if target is not None else None,
        target is not None and fax.support_digits is not None
        and fax.support_digits in (target.support_number, target.support_number_written),
        arrival.when,
        batch.settings.threading.reopen_days,
    )
    return None


MAIL = Step("threading", _mail)
FAX = Step("fax_threading", _fax)
