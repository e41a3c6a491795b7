"""The path of a message, written down once: which steps, in which order.

Each step is one module with one small function (``ingest.arrival.Step``);
the pipeline runs a message's steps in the order below until one ends its
way with an outcome. Adding a threading rule or an entitlement check is a
module here and a line in these tuples; the decisions themselves are the
pure rules in ``ticketing/rules`` that the steps ask.

Per chunk of up to ``CHUNK_SIZE`` messages, and per batch (one transaction):

    CHUNK_START → every message: UNREADABLE | MAIL | FAX → CHUNK_END
    ... → BATCH_END → commit → the source marks what was committed
"""

from __future__ import annotations

from madoguchi.ingest.arrival import BatchStep, Step
from madoguchi.ingest.steps import (
    acknowledge,
    authenticity,
    autoreply,
    batch_end,
    deadline,
    dedupe,
    entitlement,
    fax_sender,
    follow_up,
    machine_mail,
    mail_trust,
    message,
    numbering,
    placement,
    read_ahead,
    received,
    rows,
    support_number,
    threading,
    unreadable,
)

# Messages per chunk: its rows are written, and its acknowledgements queued,
# while the workers prepare the next one.
CHUNK_SIZE = 50

CHUNK_START: tuple[BatchStep, ...] = (
    read_ahead.STEP,  # the chunk's stored dedupe keys and referenced tickets, in a few queries
)

UNREADABLE: tuple[Step, ...] = (
    unreadable.STEP,  # not mail, a broken FAX document, a dead worker: quarantined
)

MAIL: tuple[Step, ...] = (
    dedupe.STEP,  # stored before: nothing more
    received.STEP,  # when the desk received it
    authenticity.STEP,  # a forged sender vouches for nothing
    autoreply.STEP,  # bounce, auto-reply, bulk, loop
    threading.MAIL,  # References → subject tag → 受付番号 etc.; join, reopen or open
    machine_mail.STEP,  # machine-written: joins what it is about, else quarantined
    support_number.MAIL,  # a new ticket: the number at the top or after its label
    entitlement.MAIL,  # ... the sender's contacts, the contract in force → flags
    placement.STEP,  # join (reopen) the ticket, or open a new one
    mail_trust.STEP,  # ... a follow-up nobody vouched for: flagged, its writer no participant
    follow_up.STEP,  # ... a follow-up wakes its ticket: back to the desk, next response due
    numbering.STEP,  # ... its number
    deadline.STEP,  # ... its first-response deadline
    message.STEP,  # the message's rows, attachments and text
)

FAX: tuple[Step, ...] = (
    dedupe.STEP,  # the same document (its sha256) stored before: nothing more
    received.STEP,
    fax_sender.STEP,  # the sending machine's number (header line, TSI, caller ID) → contacts
    support_number.FAX,  # read by OCR when prepared; handwritten boxes: the registered numbers
    threading.FAX,  # the 問合せ番号 on the page, vouched for by its support number
    entitlement.FAX,  # a new ticket: the contact the page names; unreadable → triage
    placement.STEP,
    follow_up.STEP,
    numbering.STEP,
    deadline.STEP,
    message.STEP,
)

CHUNK_END: tuple[BatchStep, ...] = (
    rows.STEP,  # the chunk's tickets and messages: one INSERT per table
    acknowledge.STEP,  # the new tickets' acknowledgements into the outbox
    mail_trust.FLAGS,  # stored tickets an unverified follow-up joined: flagged
)

BATCH_END: tuple[BatchStep, ...] = (
    numbering.SAVE,  # SQLite: the year's counter written back once
    batch_end.FLUSH,  # what the ORM holds: quarantine entries, reopened tickets
    batch_end.SOURCE,  # the source's bookkeeping (IMAP claim settled, marks owed)
    batch_end.BLOBS,  # raw bytes and attachments on disk before the rows naming them commit
)
