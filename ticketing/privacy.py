"""One person's data, all of it out, or anonymised in place (APPI requests).

``find`` gathers everything the desk keeps about one e-mail address: the
contacts registered with it, the tickets those contacts are the contact of,
every message from or to it (Cc included), the outbox mail to it and the
quarantined input that mentions it. ``export`` turns that into one JSON
document (and, given a folder, the raw messages and attachments beside it);
``erase`` anonymises it in place: names, addresses, phone and FAX numbers,
subjects and texts are replaced, Message-IDs and FAX readings dropped, raw
bytes and attachments removed (their blobs once nothing names them:
``sweep_blobs``, after the commit), outbox mail and quarantined input
deleted. Staff notes on the person's tickets are anonymised with the rest;
on other tickets, a note or message that names the person (the address, a
registered contact's name, phone or FAX number) keeps its text with those
words replaced (``mentions``, ``redact``).
Each request is recorded in ``privacy_actions`` by the sha256 of the
address, never the address itself. The command line is
``madoguchi privacy export|erase --email ADDRESS``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from madoguchi.ticketing.blobstore import BlobStore
from madoguchi.ticketing.history import erase_mentions
from madoguchi.ticketing.models import (
    Attachment,
    Contact,
    ContactEmail,
    Message,
    OutboxMessage,
    QuarantineEntry,
    RawMessage,
    Ticket,
)
from madoguchi.ticketing.security_models import PrivacyAction
from madoguchi.ticketing.toolkit_models import PhoneCall

ERASED_NAME = "（削除済み）"
ERASED_TEXT = "（個人情報の削除により削除しました）"


def subject_hash(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


@dataclass
class PersonData:
    address: str
    contacts: list[Contact] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    outbox: list[OutboxMessage] = field(default_factory=list)
    quarantine: list[QuarantineEntry] = field(default_factory=list)
    # Messages on other tickets (staff notes mostly) that name the person.
    mentioned_in: list[Message] = field(default_factory=list)

    def identifiers(self) -> list[str]:
        """What names the person in free text: the address and the contacts' name,
        phone and FAX number (names of one character would match too much)."""
        found = {self.address}
        for c in self.contacts:
            found.update(v for v in (c.name, c.phone, c.fax) if v and len(v.strip()) >= 2)
        return sorted((v.strip() for v in found), key=len, reverse=True)


def _mentions(values: Iterable[str] | None, address: str) -> bool:
    return any(v.lower() == address for v in values or ())


def find(db: Session, address: str, blobs: BlobStore) -> PersonData:
    """Everything the desk keeps about ``address`` (compared lower-cased)."""
    address = address.strip().lower()
    found = PersonData(address)
    found.contacts = list(db.scalars(
        select(Contact).join(ContactEmail).where(ContactEmail.email == address).distinct()
    ))
    contact_ids = [c.id for c in found.contacts]
    tickets = {t.id: t for t in db.scalars(
        select(Ticket).where(Ticket.contact_id.in_(contact_ids)))} if contact_ids else {}
    like = f"%{address}%"
    candidates = db.scalars(select(Message).where(or_(
        func.lower(Message.sender) == address,
        cast(Message.recipients, Text).ilike(like),
        cast(Message.cc, Text).ilike(like),
        Message.ticket_id.in_(list(tickets)),
    )).order_by(Message.id))
    for m in candidates:
        if (m.ticket_id in tickets or m.sender.lower() == address
                or _mentions(m.recipients, address) or _mentions(m.cc, address)):
            found.messages.append(m)
            tickets.setdefault(m.ticket_id, m.ticket)
    found.tickets = sorted(tickets.values(), key=lambda t: t.id)
    found.outbox = [o for o in db.scalars(select(OutboxMessage).where(
        cast(OutboxMessage.rcpt_to, Text).ilike(like))) if _mentions(o.rcpt_to, address)]
    found.mentioned_in = mentions(db, found)
    needle = address.encode()
    for q in db.scalars(select(QuarantineEntry).order_by(QuarantineEntry.id)):
        if blobs.exists(q.sha256) and needle in blobs.get(q.sha256).lower():
            found.quarantine.append(q)
    return found


def mentions(db: Session, data: PersonData) -> list[Message]:
    """Messages not already ``data``'s whose subject or text names the person."""
    mine = {m.id for m in data.messages}
    conditions = [column.contains(word, autoescape=True)
                  for word in data.identifiers() for column in (Message.subject, Message.text)]
    return [m for m in db.scalars(select(Message).where(or_(*conditions)).order_by(Message.id))
            if m.id not in mine]


def redact(messages: Iterable[Message], words: list[str]) -> None:
    """Replace ``words`` (longest first) in the subject, text and HTML of ``messages``."""
    for m in messages:
        for word in words:
            m.subject = m.subject.replace(word, ERASED_NAME)
            m.text = m.text.replace(word, ERASED_NAME)
            if m.html:
                m.html = m.html.replace(word, ERASED_NAME)


def _moment(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _message_record(m: Message) -> dict[str, Any]:
    return {
        "id": m.id, "direction": m.direction.value, "channel": m.channel.value,
        "date": _moment(m.date), "received_at": _moment(m.received_at),
        "sender": m.sender, "sender_name": m.sender_name, "recipients": m.recipients,
        "cc": m.cc, "subject": m.subject, "text": m.text, "html": m.html,
        "message_id": m.message_id, "raw_sha256": m.raw.sha256 if m.raw else None,
        "attachments": [{"id": a.id, "filename": a.filename, "content_type": a.content_type,
                         "size": a.size, "sha256": a.sha256} for a in m.attachments],
    }


def export_record(data: PersonData, now: datetime) -> dict[str, Any]:
    """All of one person's data as one JSON-ready document."""
    by_ticket: dict[int, list[Message]] = {}
    for m in data.messages:
        by_ticket.setdefault(m.ticket_id, []).append(m)
    return {
        "email": data.address,
        "exported_at": now.isoformat(),
        "contacts": [{"id": c.id, "company": c.customer.company, "name": c.name,
                      "phone": c.phone, "fax": c.fax, "emails": [e.email for e in c.emails]}
                     for c in data.contacts],
        "tickets": [{"number": t.number, "status": t.status.value, "subject": t.subject,
                     "received_at": _moment(t.received_at), "closed_at": _moment(t.closed_at),
                     "messages": [_message_record(m) for m in by_ticket.get(t.id, [])]}
                    for t in data.tickets],
        "outbox": [{"id": o.id, "kind": o.kind, "created_at": _moment(o.created_at),
                    "status": o.status.value, "rcpt_to": o.rcpt_to} for o in data.outbox],
        "quarantine": [{"id": q.id, "received_at": _moment(q.received_at), "reason": q.reason,
                        "size": q.size, "sha256": q.sha256} for q in data.quarantine],
        "mentioned_in": [{"ticket": m.ticket.number, "id": m.id, "channel": m.channel.value,
                          "date": _moment(m.date), "text": m.text} for m in data.mentioned_in],
    }


def record(db: Session, action: str, address: str, now: datetime, operator: str,
           summary: dict[str, object]) -> None:
    db.add(PrivacyAction(at=now, action=action, subject_sha256=subject_hash(address) if address
                         else "", operator=operator[:100], summary=summary))


def anonymise_messages(db: Session, messages: Iterable[Message]) -> set[str]:
    """Replace what identifies anyone in ``messages``; the blobs they named (to sweep)."""
    released: set[str] = set()
    raw_ids: set[int] = set()
    messages = list(messages)
    for m in messages:
        for a in list(m.attachments):
            released.add(a.sha256)
            db.delete(a)
        if m.raw_id is not None:
            raw_ids.add(m.raw_id)
        m.sender, m.sender_name, m.recipients, m.cc = "", ERASED_NAME, [], []
        m.subject, m.text, m.html = ERASED_NAME, ERASED_TEXT, None
        m.message_id, m.in_reply_to, m.references, m.fax_reading = None, None, [], None
        m.raw_id = None
    db.flush()
    # A call's party and number identify the caller as much as a sender does.
    db.execute(update(PhoneCall).where(PhoneCall.message_id.in_([m.id for m in messages]))
               .values(party="", number=""))
    if raw_ids:
        released.update(db.scalars(select(RawMessage.sha256).where(RawMessage.id.in_(raw_ids))))
        db.execute(delete(RawMessage).where(RawMessage.id.in_(raw_ids)))
    return released


@dataclass
class Erasure:
    contacts: int = 0
    tickets: int = 0
    messages: int = 0
    outbox: int = 0
    quarantine: int = 0
    mentions: int = 0
    blobs: set[str] = field(default_factory=set)  # to sweep after the commit

    def summary(self) -> dict[str, object]:
        return {"contacts": self.contacts, "tickets": self.tickets, "messages": self.messages,
                "outbox": self.outbox, "quarantine": self.quarantine, "mentions": self.mentions}


def erase(db: Session, data: PersonData, now: datetime, operator: str) -> Erasure:
    """Anonymise ``data`` in place and record it; the caller commits, then ``sweep_blobs``."""
    done = Erasure(contacts=len(data.contacts), tickets=len(data.tickets),
                   messages=len(data.messages), outbox=len(data.outbox),
                   quarantine=len(data.quarantine), mentions=len(data.mentioned_in))
    # Before the contacts lose their names: those are among the words to replace,
    # in the messages that mention the person and in the tickets' history lines.
    redact(data.mentioned_in, data.identifiers())
    erase_mentions(db, sorted({t.id for t in data.tickets}
                              | {m.ticket_id for m in data.mentioned_in}),
                   {*data.identifiers(),
                    *(m.sender_name for m in data.messages if m.sender == data.address)},
                   ERASED_NAME)
    for c in data.contacts:
        c.name, c.phone, c.fax = ERASED_NAME, "", ""
        c.emails.clear()
    for t in data.tickets:
        if t.contact_id in {c.id for c in data.contacts}:
            t.subject = ERASED_NAME
    done.blobs |= anonymise_messages(db, data.messages)
    for o in data.outbox:
        db.delete(o)
    for q in data.quarantine:
        done.blobs.add(q.sha256)
        db.delete(q)
    record(db, "erase", data.address, now, operator, done.summary())
    return done


def sweep_blobs(factory: sessionmaker[Session], blobs: BlobStore, shas: Iterable[str]) -> int:
    """Delete the blobs among ``shas`` that no row names any more; how many went."""
    removed = 0
    with factory() as db:
        for sha in sorted(set(shas)):
            named = any(db.scalar(select(func.count()).where(column == sha))
                        for column in (RawMessage.sha256, Attachment.sha256,
                                       QuarantineEntry.sha256))
            if not named and blobs.delete(sha):
                removed += 1
    return removed
