"""The ticket store: reading the facts the rules need, and writing tickets.

Every function takes the caller's Session and never commits: the pipeline
owns the transaction, so a batch of messages and the source's position are
committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, Table, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from madoguchi.ticketing.dialect import dialect_of
from madoguchi.ticketing.models import (
    Contact,
    ContactEmail,
    Contract,
    Message,
    OutboxMessage,
    Ticket,
    TicketCounter,
    TicketStatus,
)
from madoguchi.ticketing.rules.entitlement import ContactCard, ContactFacts, ContractFacts
from madoguchi.ticketing.ticket_number import TicketNumber


def stored_dedupe_keys(session: Session, keys: list[str]) -> set[str]:
    """Which of ``keys`` belong to messages already stored."""
    if not keys:
        return set()
    return set(session.scalars(select(Message.dedupe_key).where(Message.dedupe_key.in_(keys))))


def contract_facts(contract: Contract) -> ContractFacts:
    return ContractFacts(
        id=contract.id,
        customer_id=contract.customer_id,
        support_number=contract.support_number,
        period_start=contract.period_start,
        period_end=contract.period_end,
        periods=contract.stored_periods,
        terms=contract.terms,
        product=contract.product,
    )


def contract_for_number(session: Session, digits: str) -> ContractFacts | None:
    contract = session.scalar(
        select(Contract).where(Contract.support_number == digits)
        .options(selectinload(Contract.periods))
    )
    return contract_facts(contract) if contract else None


def contacts_for_address(session: Session, address: str) -> tuple[ContactFacts, ...]:
    if not address:
        return ()
    contacts = session.scalars(
        select(Contact)
        .join(ContactEmail)
        .where(ContactEmail.email == address.lower())
        .options(selectinload(Contact.contracts).selectinload(Contract.periods))
        .order_by(Contact.id)
    ).unique()
    return tuple(
        ContactFacts(
            id=c.id,
            customer_id=c.customer_id,
            contracts=tuple(contract_facts(k) for k in c.contracts),
        )
        for c in contacts
    )


def contacts_by_ids(session: Session, ids: Iterable[int]) -> tuple[ContactFacts, ...]:
    wanted = list(ids)
    if not wanted:
        return ()
    contacts = session.scalars(
        select(Contact).where(Contact.id.in_(wanted))
        .options(selectinload(Contact.contracts).selectinload(Contract.periods))
    )
    return tuple(
        ContactFacts(c.id, c.customer_id, tuple(contract_facts(k) for k in c.contracts))
        for c in contacts
    )


def registered_numbers(session: Session, digits: Iterable[str]) -> set[str]:
    """Which of ``digits`` are contracts' support numbers (the closed set, asked in one query)."""
    wanted = sorted(set(digits))
    if not wanted:
        return set()
    return set(session.scalars(select(Contract.support_number).where(
        Contract.support_number.in_(wanted))))


def contacts_for_fax(session: Session, digits: str) -> tuple[ContactFacts, ...]:
    """The registered contacts whose FAX number is ``digits`` (compared digit by digit)."""
    if len(digits) < 9:
        return ()
    # Stored as written (03-1234-5678): narrowed by the last four digits, then compared.
    candidates = session.scalars(
        select(Contact).where(Contact.fax.like(f"%{digits[-4:]}"))
        .options(selectinload(Contact.contracts)).order_by(Contact.id)
    )
    return tuple(
        ContactFacts(c.id, c.customer_id, tuple(contract_facts(k) for k in c.contracts))
        for c in candidates
        if "".join(ch for ch in c.fax if ch.isdigit()) == digits
    )


def contact_cards(session: Session, customer_id: int) -> tuple[ContactCard, ...]:
    """The customer's registered contacts as a FAX form may show them."""
    contacts = session.scalars(
        select(Contact).where(Contact.customer_id == customer_id).options(
            selectinload(Contact.emails)
        )
    )
    return tuple(
        ContactCard(c.id, c.name, tuple(e.email for e in c.emails), c.phone, c.fax)
        for c in contacts
    )


def ticket_by_message_ids(session: Session, message_ids: Iterable[str]) -> Ticket | None:
    """The ticket of the newest stored message among ``message_ids``."""
    ids = [m for m in message_ids if m]
    if not ids:
        return None
    ticket_id = session.scalar(
        select(Message.ticket_id)
        .where(Message.message_id.in_(ids))
        .order_by(Message.id.desc())
        .limit(1)
    )
    if ticket_id is None:
        # A reply to (or a bounce of) mail the desk sent, such as the
        # acknowledgement: the outbox knows its Message-ID and its ticket.
        ticket_id = session.scalar(
            select(OutboxMessage.ticket_id)
            .where(OutboxMessage.message_id.in_([f"<{i}>" for i in ids]))
            .where(OutboxMessage.ticket_id.is_not(None))
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        )
    return session.get(Ticket, ticket_id) if ticket_id is not None else None




# Values in one IN (...) list: well below SQLite's 32,766 and PostgreSQL's
# 65,535 bound parameters, whatever else the statement carries.
_IN_CHUNK = 1000


def _chunked(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start:start + _IN_CHUNK]


def newest_by_message_id(
    session: Session, message_ids: Iterable[str]
) -> dict[str, tuple[int, int]]:
    """For each of ``message_ids`` some stored message carries: (that message's id, its ticket id).

    When several messages carry the same Message-ID, the newest (highest id)
    counts, as in ``ticket_by_message_ids``; this answers for many ids at once.
    """
    ids = sorted({m for m in message_ids if m})
    found: dict[str, tuple[int, int]] = {}
    for part in _chunked(ids):
        for message_id, row_id, ticket_id in session.execute(
            select(Message.message_id, Message.id, Message.ticket_id).where(
                Message.message_id.in_(part)
            )
        ):
            assert message_id is not None  # it matched one of ``part``
            if message_id not in found or row_id > found[message_id][0]:
                found[message_id] = (row_id, ticket_id)
    return found


def newest_outbox_by_message_id(
    session: Session, message_ids: Iterable[str]
) -> dict[str, tuple[int, int]]:
    """Like ``newest_by_message_id`` for mail the desk sent (the outbox keeps <id>)."""
    ids = sorted({f"<{m}>" for m in message_ids if m})
    found: dict[str, tuple[int, int]] = {}
    for part in _chunked(ids):
        for message_id, row_id, ticket_id in session.execute(
            select(OutboxMessage.message_id, OutboxMessage.id, OutboxMessage.ticket_id)
            .where(OutboxMessage.message_id.in_(part))
            .where(OutboxMessage.ticket_id.is_not(None))
        ):
            key = message_id[1:-1]
            assert ticket_id is not None  # the query asks for rows with a ticket
            if key not in found or row_id > found[key][0]:
                found[key] = (row_id, ticket_id)
    return found


def tickets_by_ids(session: Session, ids: Iterable[int]) -> dict[int, Ticket]:
    wanted = sorted(set(ids))
    found: dict[int, Ticket] = {}
    for part in _chunked(wanted):
        found.update((t.id, t) for t in session.scalars(select(Ticket).where(Ticket.id.in_(part))))
    return found


def participants_of(
    session: Session, ticket_ids: Iterable[int], desk_address: str
) -> dict[int, frozenset[str]]:
    """``participants`` of many tickets in one query (a ticket without messages: empty)."""
    wanted = sorted(set(ticket_ids))
    found: dict[int, set[str]] = {t: set() for t in wanted}
    for part in _chunked(wanted):
        for ticket_id, sender, recipients, cc in session.execute(
            select(Message.ticket_id, Message.sender, Message.recipients, Message.cc).where(
                Message.ticket_id.in_(part),
                # What an unvouched sender wrote makes nobody a participant.
                Message.unverified_sender.is_(False),
            )
        ):
            seen = found[ticket_id]
            seen.add(sender)
            seen.update(recipients or ())
            seen.update(cc or ())
    desk = desk_address.lower()
    return {t: frozenset(a for a in seen if a and a != desk) for t, seen in found.items()}


def insert_rows(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]], *, key: str | None = None
) -> list[int]:
    """INSERT ``rows`` (dicts with the same keys) with multi-row statements.

    With ``key`` (a column whose values are unique among ``rows``), returns
    the new ids in the order of ``rows``: the ids come back with RETURNING
    and are matched by ``key``, which neither SQLite nor PostgreSQL needs to
    keep in order. Rows whose ``key`` repeats are inserted one at a time.
    """
    if not rows:
        return []
    if key is None:
        session.execute(insert(table), list(rows))
        return []
    pk, column = table.c.id, table.c[key]
    values = [row[key] for row in rows]
    if len(set(values)) < len(values):
        return [
            session.execute(insert(table).returning(pk), dict(row)).scalar_one() for row in rows
        ]
    ids = dict((k, i) for i, k in session.execute(insert(table).returning(pk, column), list(rows)))
    return [ids[v] for v in values]




def contact_emails(session: Session, customer_id: int | None) -> frozenset[str]:
    """Every registered contact address of a customer."""
    if customer_id is None:
        return frozenset()
    return frozenset(
        session.scalars(
            select(ContactEmail.email).join(Contact).where(Contact.customer_id == customer_id)
        )
    )


def next_ticket_number(session: Session, prefix: str, year: int) -> str:
    """Hand out the next number of ``year``; safe under concurrent writers.

    The counter row is bumped with UPDATE ... RETURNING, which takes the row
    lock on PostgreSQL and the write lock on SQLite, so two workers never
    receive the same number.
    """
    return str(TicketNumber(prefix, year, _bump_counter(session, year)))


def reserve_ticket_sequence(engine: Engine, year: int) -> int:
    """Take the next sequence number of ``year`` in a transaction of its own.

    Like a database sequence: the counter row is locked only while this short
    transaction runs, not until the caller's batch commits, so several
    daemons storing batches at once never wait for each other here. A number
    taken by a batch that then never commits is a gap in the numbering.
    """
    with Session(engine) as session:
        # No wait for the disk here: a batch that commits tickets with this
        # number flushes the log up to its own commit, this one included; a
        # number whose batch never commits may be lost.
        dialect_of(engine).without_waiting_for_disk(session)
        sequence = _bump_counter(session, year)
        session.commit()
        return sequence


def _bump_counter(session: Session, year: int) -> int:
    for _ in range(3):
        last = session.scalar(
            update(TicketCounter)
            .where(TicketCounter.year == year)
            .values(last=TicketCounter.last + 1)
            .returning(TicketCounter.last)
        )
        if last is not None:
            return int(last)
        try:
            with session.begin_nested():
                session.execute(insert(TicketCounter).values(year=year, last=0))
        except IntegrityError:
            pass  # another writer created the year's row first
    raise RuntimeError(f"could not allocate a ticket number for {year}")




def reopen(ticket: Ticket) -> None:
    ticket.status = TicketStatus.OPEN
    ticket.closed_at = None
