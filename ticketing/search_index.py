"""Keeps the folded search columns in step with what they are made of, on every ORM write.

``messages.search_text`` (the word search), ``customers.search_key`` and
``contacts.search_key`` (the customer lookup) are written by the rules in
``ticketing.rules.search_text`` whenever a row is inserted or updated
through the ORM; migration 0014 filled them for the rows that existed.
The ingest's Core INSERT of messages bypasses these events: its rows carry
``message_text`` themselves (``ingest.drafts.NewMessage.row``). A Core
UPDATE of the text columns would leave the column stale: ``refresh`` the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import event

from madoguchi.ticketing.models import Contact, Customer, Message
from madoguchi.ticketing.rules.reading import reading
from madoguchi.ticketing.rules.search_text import lookup_key, message_document
from madoguchi.ticketing.vocabulary import Channel


class MessageFields(Protocol):
    """A ``Message``, or the ingest's ``NewMessage`` whose row is written by a Core INSERT."""

    @property
    def channel(self) -> Channel: ...
    @property
    def subject(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def sender(self) -> str: ...
    @property
    def sender_name(self) -> str: ...
    @property
    def recipients(self) -> Sequence[str]: ...
    @property
    def cc(self) -> Sequence[str]: ...


def message_text(m: MessageFields) -> str:
    return message_document(
        note=m.channel == Channel.NOTE, subject=m.subject or "", text=m.text or "",
        sender=m.sender or "", sender_name=m.sender_name or "",
        recipients=list(m.recipients or []), cc=list(m.cc or []))


def customer_key(c: Customer) -> str:
    return lookup_key(c.company or "", c.department or "", readings=[reading(c.company or "")])


def contact_key(c: Contact) -> str:
    return lookup_key(c.name or "", readings=[reading(c.name or "")],
                      numbers=[c.phone or "", c.fax or ""])


def refresh(row: Message | Customer | Contact) -> None:
    if isinstance(row, Message):
        row.search_text = message_text(row)
    elif isinstance(row, Customer):
        row.search_key = customer_key(row)
    else:
        row.search_key = contact_key(row)


def _refresh(_mapper: Any, _connection: Any, target: Message | Customer | Contact) -> None:
    refresh(target)


for _model in (Message, Customer, Contact):
    event.listen(_model, "before_insert", _refresh)
    event.listen(_model, "before_update", _refresh)
