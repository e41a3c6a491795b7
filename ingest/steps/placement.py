"""Carry out the thread decision: join (or reopen) the ticket, or open a new one.

A new ticket gets the contract, customer, contact and flags the entitlement
step decided (with the hints staff read beside them), a link to the ticket
it follows up (``new_linked``), and the ``unregistered_sender`` flag when a
stranger quoted someone else's ticket. It gets the product whose terms
apply: its contract's, else the one of the mailbox it came to
(``ticketing.products``). Its number and due time are the next steps'.
"""

from __future__ import annotations

from madoguchi.ingest.arrival import Arrival, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.drafts import NewTicket
from madoguchi.ingest.fax import fax_subject
from madoguchi.ingest.inbound import Outcome
from madoguchi.ticketing import store
from madoguchi.ticketing.models import Contract, Ticket
from madoguchi.ticketing.products import Product
from madoguchi.ticketing.rules.threading import ThreadAction
from madoguchi.ticketing.support_number import format_number
from madoguchi.ticketing.vocabulary import Channel, Flag, TicketStatus


def _subject(batch: Batch, arrival: Arrival, customer_id: int | None) -> str:
    msg = arrival.prepared.message
    if arrival.prepared.fax is None:
        return arrival.mail.subject
    company = batch.company(customer_id) if customer_id else None
    return fax_subject(arrival.fax, msg.subject if msg else "", company)


def _product(batch: Batch, arrival: Arrival, contract: Contract | None) -> Product:
    if contract is not None:
        return batch.deadlines.product_for(contract)
    msg = arrival.prepared.message
    return batch.deadlines.products.for_mail(
        arrival.item.source, (*msg.to, *msg.cc) if msg is not None else ()
    )


def _run(batch: Batch, arrival: Arrival) -> Outcome | None:
    decision, target = arrival.decision, arrival.target
    assert decision is not None
    if decision.action in (ThreadAction.JOIN, ThreadAction.REOPEN):
        assert target is not None
        if decision.action is ThreadAction.REOPEN:
            assert isinstance(target, Ticket)  # only a stored ticket can be closed
            store.reopen(target)
        elif (isinstance(target, Ticket) and target.status is TicketStatus.PENDING
              and arrival.auto is None):
            # 保留 waits for the customer: their answer puts it back in 当方対応待ち.
            store.reopen(target)
        arrival.ticket = target
        return None
    rights = arrival.rights
    assert rights is not None
    contract = batch.contract_row(rights.contract_id)
    ticket = NewTicket(
        channel=Channel.FAX if arrival.prepared.fax is not None else Channel.EMAIL,
        subject=_subject(batch, arrival, rights.customer_id),
        # The contract's number, never an unchecked one: a number whose check
        # digit failed, or that names no contract, is only what was written.
        support_number=contract.support_number if contract is not None else None,
        support_number_written=arrival.written_number,
        customer_id=rights.customer_id,
        contract_id=rights.contract_id,
        contact_id=rights.contact_id,
        received_at=arrival.when,
        company=batch.company(rights.customer_id),
        flags=set(rights.flags),
        flag_details=rights.details(lambda d: format_number(d, batch.settings.support_number)),
        product=_product(batch, arrival, contract).name or None,
    )
    if decision.action is ThreadAction.NEW_LINKED and target is not None:
        ticket.linked_ticket = target
    if decision.unregistered_sender:
        ticket.flags.add(Flag.UNREGISTERED_SENDER)
    arrival.contract, arrival.ticket, arrival.new_ticket = contract, ticket, ticket
    return None


STEP = Step("placement", _run)
