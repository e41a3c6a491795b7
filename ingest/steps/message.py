"""The message itself, as the ticket will show it: its rows, its attachments, its text.

The last step of a message's path: it stages the new ticket (if any) and
the message for the chunk's INSERTs, and records what later messages of the
same batch must know (its dedupe key, its Message-ID, its participants).
"""

from __future__ import annotations

from pathlib import PurePath

from madoguchi.ingest.arrival import Arrival, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.drafts import AnyTicket, NewAttachment, NewMessage, NewRaw
from madoguchi.ingest.fax import fax_content_type
from madoguchi.ingest.filenames import safe_filename
from madoguchi.ingest.inbound import Outcome, OutcomeKind
from madoguchi.ticketing.vocabulary import Channel, Direction


def _attachments(arrival: Arrival) -> list[NewAttachment]:
    prepared, msg = arrival.prepared, arrival.prepared.message
    found: list[NewAttachment] = []
    if msg is not None:
        for part, (sha256, size) in zip(msg.attachments, prepared.attachment_blobs, strict=True):
            found.append(NewAttachment(
                sha256, size, part.content_type,
                safe_filename(part.filename, part.content_type), part.filename,
            ))
    else:
        # A FAX document: the original file is its first attachment.
        name = PurePath(arrival.item.source_ref).name or "fax.pdf"
        ctype = fax_content_type(name)
        found.append(NewAttachment(
            prepared.digest, len(arrival.item.raw), ctype, safe_filename(name, ctype), name
        ))
    if prepared.fax is not None:
        for i, (sha256, size) in enumerate(prepared.fax.page_blobs, 1):
            found.append(NewAttachment(sha256, size, "image/png", f"fax-page-{i:03d}.png", ""))
    return found


def add_message(
    batch: Batch, arrival: Arrival, ticket: AnyTicket, *, auto_kind: str | None = None
) -> NewMessage:
    """Stage the message's rows on ``ticket``; what later messages need is recorded."""
    prepared, item = arrival.prepared, arrival.item
    msg, fax = prepared.message, prepared.fax
    assert prepared.key is not None
    text = msg.text if msg is not None else ""
    if fax is not None:
        # The page text is what staff read and search; a gateway's own
        # covering note follows it.
        text = fax.text + (f"\n\n---\n{text}" if text.strip() else "")
    message = NewMessage(
        ticket=ticket,
        raw=NewRaw(prepared.digest, len(item.raw), item.source, item.source_ref[:500],
                   arrival.when),
        attachments=tuple(_attachments(arrival)),
        direction=Direction.IN,
        channel=Channel.FAX if fax is not None else Channel.EMAIL,
        dedupe_key=prepared.key,
        message_id=msg.message_id if msg else None,
        in_reply_to=(" ".join(msg.in_reply_to) or None) if msg else None,
        references=list(msg.references) if msg else [],
        sender=msg.from_addr if msg else "",
        sender_name=msg.from_name if msg else "FAX",
        recipients=list(msg.to) if msg else [],
        cc=list(msg.cc) if msg else [],
        subject=msg.subject if msg else ticket.subject,
        date=msg.date if msg else None,
        received_at=arrival.when,
        text=text,
        html=prepared.html,
        auto_kind=auto_kind,
        fax_reading=fax.record if fax is not None else None,
        unverified_sender=arrival.unverified,
    )
    staged = batch.staged
    staged.messages.append(message)
    staged.known_keys.add(prepared.key)
    if msg is not None and msg.message_id:
        staged.by_message_id[msg.message_id] = ticket
    if msg is not None and not arrival.unverified:
        staged.participants.setdefault(ticket.number, set()).update(
            a for a in (msg.from_addr, *msg.to, *msg.cc) if a
        )
    return message


def _run(batch: Batch, arrival: Arrival) -> Outcome | None:
    ticket, new = arrival.ticket, arrival.new_ticket
    assert ticket is not None
    if new is None:
        add_message(batch, arrival, ticket)
        return Outcome(OutcomeKind.THREADED, ticket.number)
    staged = batch.staged
    staged.tickets.append(new)
    staged.by_number[new.number] = new
    staged.new_tickets.append((new, add_message(batch, arrival, new)))
    return Outcome(OutcomeKind.CREATED, new.number)


STEP = Step("message", _run)
