"""Write the tickets and messages staged since the last write: one INSERT per table.

That is a chunk's in the fast path, one message's (in its savepoint) in the
careful pass. Tickets first (messages name them), then their flags, the raw
bytes' rows, the messages and their attachments. New ids come back with
RETURNING, matched by the ticket number and the dedupe key (unique:
multi-row INSERTs need not keep their order). A ticket linked to one of the
same statement gets its link just after.
"""

from __future__ import annotations

from sqlalchemy import bindparam, update

from madoguchi.ingest.arrival import BatchStep
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.drafts import NewTicket
from madoguchi.ticketing import change_feed, store
from madoguchi.ticketing.models import (
    Attachment,
    Message,
    RawMessage,
    Ticket,
    TicketFlag,
    table_of,
)


def _link_late(batch: Batch, tickets: list[NewTicket]) -> None:
    late = [
        {"b_id": t.id, "b_linked": t.linked_ticket.id}
        for t in tickets
        if isinstance(t.linked_ticket, NewTicket) and t.linked_ticket in tickets
    ]
    if late:
        table = table_of(Ticket)
        batch.session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(linked_ticket_id=bindparam("b_linked")),
            late,
        )


def write(batch: Batch) -> None:
    staged, session = batch.staged, batch.session
    tickets, messages = staged.tickets, staged.messages
    if not tickets and not messages:
        return
    ids = store.insert_rows(
        session, table_of(Ticket), [t.row() for t in tickets], key="number"
    )
    for ticket, ticket_id in zip(tickets, ids, strict=True):
        ticket.id = ticket_id
    _link_late(batch, tickets)
    store.insert_rows(session, table_of(TicketFlag), [
        {"ticket_id": t.id, "flag": flag, "detail": t.flag_details.get(flag)}
        for t in tickets for flag in sorted(t.flags)
    ])
    raw_ids = store.insert_rows(
        session, table_of(RawMessage), [m.raw.row() for m in messages], key="sha256"
    )
    message_ids = store.insert_rows(session, table_of(Message), [
        m.row(_id(m.ticket.id), raw_id) for m, raw_id in zip(messages, raw_ids, strict=True)
    ], key="dedupe_key")
    store.insert_rows(session, table_of(Attachment), [
        a.row(message_id)
        for m, message_id in zip(messages, message_ids, strict=True)
        for a in m.attachments
    ])
    # Core INSERTs pass the session's flush events by: the live desk hears of them here.
    change_feed.note(session, [*ids, *(m.ticket.id for m in messages)])
    staged.tickets, staged.messages = [], []


def _id(ticket_id: int | None) -> int:
    assert ticket_id is not None, "a message's ticket is written before it"
    return ticket_id


STEP = BatchStep("rows", write)
