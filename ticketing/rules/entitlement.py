"""Is the sender entitled to support, and under which contract?

Only registered contacts (窓口担当者) of a customer whose contract is in
force may ask. Nothing is dropped for failing this: the ticket is opened
with flags and staff decide.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import date

from madoguchi.ticketing.vocabulary import Flag


@dataclass(frozen=True)
class ContractFacts:
    id: int
    customer_id: int
    support_number: str
    period_start: date
    period_end: date

    def in_force_on(self, day: date) -> bool:
        return self.period_start <= day <= self.period_end


@dataclass(frozen=True)
class ContactFacts:
    id: int
    customer_id: int
    contracts: tuple[ContractFacts, ...]  # the contracts this contact is registered for


@dataclass(frozen=True)
class Entitlement:
    contract_id: int | None
    customer_id: int | None
    contact_id: int | None
    flags: frozenset[Flag] = field(default_factory=frozenset)


def decide_entitlement(
    *,
    support_number: str | None,
    contract_for_number: ContractFacts | None,
    sender_contacts: tuple[ContactFacts, ...],
    received_day: date,
) -> Entitlement:
    """The contract, customer and contact of a new ticket, and its flags.

    ``support_number`` is a check-digit-valid number from the message (None
    when there was none or it failed its check); ``sender_contacts`` are the
    registered contacts whose address is the sender's (one person may be the
    contact of several customers); ``received_day`` is the desk's local date.
    """
    flags: set[Flag] = set()

    if contract_for_number is not None:
        contract = contract_for_number
        contact = next((c for c in sender_contacts if c.customer_id == contract.customer_id), None)
        if contact is None:
            flags.add(Flag.UNREGISTERED_SENDER)
        if not contract.in_force_on(received_day):
            flags.add(Flag.CONTRACT_EXPIRED)
        return Entitlement(
            contract.id, contract.customer_id, contact.id if contact else None, frozenset(flags)
        )

    # No usable number (none, failed check digit, or matching no contract):
    # infer the contract from the sender when that is unambiguous.
    if support_number is not None or not sender_contacts:
        flags.add(Flag.UNKNOWN_SUPPORT_NUMBER)
    if not sender_contacts:
        flags.add(Flag.UNREGISTERED_SENDER)
        return Entitlement(None, None, None, frozenset(flags))

    in_force = [
        (contact, contract)
        for contact in sender_contacts
        for contract in contact.contracts
        if contract.in_force_on(received_day)
    ]
    if len(in_force) == 1:
        contact, contract = in_force[0]
        return Entitlement(contract.id, contract.customer_id, contact.id, frozenset(flags))

    all_contracts = [(ct, c) for ct in sender_contacts for c in ct.contracts]
    if not in_force and len(all_contracts) == 1:
        contact, contract = all_contracts[0]
        flags.add(Flag.CONTRACT_EXPIRED)
        return Entitlement(contract.id, contract.customer_id, contact.id, frozenset(flags))

    # Several contracts in force (or none at all): staff must pick one.
    flags.add(Flag.UNKNOWN_SUPPORT_NUMBER)
    contact = sender_contacts[0]
    customers = {c.customer_id for c in sender_contacts}
    customer_id = contact.customer_id if len(customers) == 1 else None
    contact_id = contact.id if len(sender_contacts) == 1 else None
    return Entitlement(None, customer_id, contact_id, frozenset(flags))


@dataclass(frozen=True)
class ContactCard:
    """What a FAX form may show of a registered contact."""

    id: int
    name: str
    emails: tuple[str, ...]
    phone: str
    fax: str


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def match_fax_contact(text: str, cards: tuple[ContactCard, ...]) -> int | None:
    """The registered contact a FAX page names, if exactly one is recognisable.

    A FAX has no verified sender. The request form asks for the name, phone,
    FAX number and e-mail address; a contact counts as named when one of
    them appears in the page's OCR text (spaces ignored, numbers compared by
    digits). Two or more matches, or none, is left to staff.
    """
    folded = unicodedata.normalize("NFKC", text)
    squeezed = "".join(folded.split()).lower()
    digits = _digits(folded)
    found = set()
    for card in cards:
        name = "".join(unicodedata.normalize("NFKC", card.name).split()).lower()
        numbers = [n for n in (_digits(card.phone), _digits(card.fax)) if len(n) >= 9]
        if (
            (len(name) >= 2 and name in squeezed)
            or any(e and e.lower() in squeezed for e in card.emails)
            or any(n in digits for n in numbers)
        ):
            found.add(card.id)
    return found.pop() if len(found) == 1 else None
