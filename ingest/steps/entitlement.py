"""Is the sender entitled, and under which contract? (``decide_entitlement``, the one rule.)

Mail: the contacts registered under the sender's address. A FAX has no
verified sender: the contact its page names (name, phone, FAX or e-mail of a
registered contact of the number's customer), else the contact whose
registered FAX number sent it. An unreadable FAX number is not guessed: the
ticket waits in triage, flagged ``unreadable_fax``; when the sending
machine's number identifies one customer, the ticket is given that customer
(and its contract when only one is in force) for staff to confirm.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from madoguchi.ingest.arrival import Arrival, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.inbound import Outcome
from madoguchi.ticketing import store
from madoguchi.ticketing.rules.entitlement import (
    ContactFacts,
    Entitlement,
    decide_entitlement,
    match_fax_contact,
)
from madoguchi.ticketing.vocabulary import Flag


def _mail(batch: Batch, arrival: Arrival) -> Outcome | None:
    if not arrival.opens_ticket:
        return None
    digits, sender = arrival.support_number, arrival.sender
    arrival.rights = decide_entitlement(
        support_number=digits,
        contract_for_number=batch.contract(digits) if digits else None,
        sender_contacts=batch.contacts(sender) if sender else (),
        received_day=arrival.when.astimezone(batch.settings.tz).date(),
    )
    return None


def _fax(batch: Batch, arrival: Arrival) -> Outcome | None:
    if not arrival.opens_ticket:
        return None
    digits = arrival.support_number
    day = arrival.when.astimezone(batch.settings.tz).date()
    if digits is None:
        arrival.rights = _by_sender(arrival.sender_contacts, day)
        return None
    contract = batch.contract(digits)
    contacts: tuple[ContactFacts, ...] = ()
    if contract is not None:
        cards = store.contact_cards(batch.session, contract.customer_id)
        named = match_fax_contact(arrival.fax.text, cards)
        contacts = store.contacts_by_ids(batch.session, [named] if named else [])
        if not contacts:  # the page names nobody: the contact whose machine sent it
            contacts = tuple(
                c for c in arrival.sender_contacts if c.customer_id == contract.customer_id
            )[:1]
    arrival.rights = decide_entitlement(
        support_number=digits,
        contract_for_number=contract,
        sender_contacts=contacts,
        received_day=arrival.when.astimezone(batch.settings.tz).date(),
    )
    return None


def _by_sender(sender_contacts: tuple[ContactFacts, ...], day: date) -> Entitlement:
    """An unreadable FAX: the customer its sending machine's number identifies, to confirm.

    The rule decides as for a mail from those contacts; the ticket stays
    flagged ``unreadable_fax`` in triage for staff to confirm the number.
    """
    unreadable = frozenset({Flag.UNREADABLE_FAX})
    if not sender_contacts or len({c.customer_id for c in sender_contacts}) > 1:
        return Entitlement(None, None, None, unreadable)
    decided = decide_entitlement(
        support_number=None,
        contract_for_number=None,
        sender_contacts=sender_contacts,
        received_day=day,
    )
    return replace(decided, flags=decided.flags | unreadable)


MAIL = Step("entitlement", _mail)
FAX = Step("fax_entitlement", _fax)
