"""Is the sender entitled, and under which contract? (``decide_entitlement``, the one rule.)

Mail: the contacts registered under the sender's address. A FAX has no
verified sender: the contact its page names (name, phone, FAX or e-mail of a
registered contact of the number's customer). An unreadable FAX number is
not guessed: the ticket waits in triage, flagged ``unreadable_fax``.
"""

from __future__ import annotations

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
    if digits is None:
        arrival.rights = Entitlement(None, None, None, frozenset({Flag.UNREADABLE_FAX}))
        return None
    contract = batch.contract(digits)
    contacts: tuple[ContactFacts, ...] = ()
    if contract is not None:
        cards = store.contact_cards(batch.session, contract.customer_id)
        named = match_fax_contact(arrival.fax.text, cards)
        contacts = store.contacts_by_ids(batch.session, [named] if named else [])
    arrival.rights = decide_entitlement(
        support_number=digits,
        contract_for_number=contract,
        sender_contacts=contacts,
        received_day=arrival.when.astimezone(batch.settings.tz).date(),
    )
    return None


MAIL = Step("entitlement", _mail)
FAX = Step("fax_entitlement", _fax)
