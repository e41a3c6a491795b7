"""Is the sender entitled to support, and under which contract?

Only the contacts registered for the contract (窓口担当者) may ask, and only
within a support period of it: "ご質問・お問い合わせができる方は、窓口担当者として
登録された方のみとなります" and "サポート契約の期限を過ぎている本ソフトウェアに関する
ご質問・お問い合わせ" is out of scope (All Gather CRM ご利用ガイド 4(2)). The period is
the one covering the day the message was received (``rules.periods``).
Nothing is dropped for failing this: the ticket is opened with flags and
staff decide.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from madoguchi.ticketing.rules.periods import Period, PeriodKind, PlanTerms, Standing, standing_on
from madoguchi.ticketing.vocabulary import Flag

_STANDING_FLAG = {Standing.EXPIRED: Flag.CONTRACT_EXPIRED,
                  Standing.NOT_STARTED: Flag.CONTRACT_NOT_STARTED}


@dataclass(frozen=True)
class ContractFacts:
    """A contract as the rule sees it: its periods and plan (``period_start``/``period_end``
    stand for one certificate period when no periods are given)."""

    id: int
    customer_id: int
    support_number: str
    period_start: date
    period_end: date
    periods: tuple[Period, ...] = ()
    terms: PlanTerms = field(default_factory=PlanTerms)
    product: str = ""

    def standing_on(self, day: date) -> Standing:
        periods = self.periods or (
            Period(PeriodKind.CERTIFICATE, self.period_start, self.period_end),
        )
        return standing_on(day, periods, self.terms)[0]

    def in_force_on(self, day: date) -> bool:
        return self.standing_on(day) is Standing.IN_FORCE


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
    # The sender is a contact of the contract's company, registered for these of
    # its other contracts (support numbers) but not for this one: staff's hint.
    other_contracts: tuple[str, ...] | None = None

    def details(self, display: Callable[[str], str]) -> dict[Flag, str]:
        """What staff read beside the flags (``display`` writes a support number)."""
        if Flag.UNREGISTERED_SENDER not in self.flags or self.other_contracts is None:
            return {}
        if not self.other_contracts:
            return {Flag.UNREGISTERED_SENDER: "送信者は同じ会社の窓口担当者ですが、"
                                              "どの契約にも登録されていません。"}
        numbers = "、".join(display(n) for n in self.other_contracts)
        return {Flag.UNREGISTERED_SENDER: f"送信者は同じ会社の別の契約（{numbers}）の窓口担当者"
                                          "です。この契約には登録されていません。"}


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
        return _for_contract(contract_for_number, sender_contacts, received_day)

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
        flags.add(_STANDING_FLAG[contract.standing_on(received_day)])
        return Entitlement(contract.id, contract.customer_id, contact.id, frozenset(flags))

    # Several contracts in force (or none at all): staff must pick one.
    flags.add(Flag.UNKNOWN_SUPPORT_NUMBER)
    contact = sender_contacts[0]
    customers = {c.customer_id for c in sender_contacts}
    customer_id = contact.customer_id if len(customers) == 1 else None
    contact_id = contact.id if len(sender_contacts) == 1 else None
    return Entitlement(None, customer_id, contact_id, frozenset(flags))


def _for_contract(
    contract: ContractFacts, sender_contacts: tuple[ContactFacts, ...], received_day: date
) -> Entitlement:
    """The message names ``contract``: is the sender registered for it, is it in force?

    A contact of the same company registered only for its other contracts is
    not registered for this one: flagged, with those contracts as the hint.
    """
    flags: set[Flag] = set()
    registered = next(
        (c for c in sender_contacts if any(k.id == contract.id for k in c.contracts)), None
    )
    colleague = None
    if registered is None:
        flags.add(Flag.UNREGISTERED_SENDER)
        colleague = next((c for c in sender_contacts if c.customer_id == contract.customer_id),
                         None)
    standing = contract.standing_on(received_day)
    if standing is not Standing.IN_FORCE:
        flags.add(_STANDING_FLAG[standing])
    contact = registered or colleague
    return Entitlement(
        contract.id, contract.customer_id, contact.id if contact else None, frozenset(flags),
        other_contracts=None if colleague is None else tuple(
            k.support_number for k in colleague.contracts
        ),
    )


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
