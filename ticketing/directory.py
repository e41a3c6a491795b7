"""What staff change in the customer directory: customers, contracts, contacts (窓口担当者).

Each function works in the caller's session and never commits; a value that
will not do raises ``ActionError`` with the sentence staff read.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from madoguchi.ticketing.actions import ActionError
from madoguchi.ticketing.contracts import TermsError, apply_details, read_details, renew
from madoguchi.ticketing.models import Contact, ContactEmail, Contract, ContractPeriod, Customer
from madoguchi.ticketing.products import Products
from madoguchi.ticketing.rules.marks import N_

_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
MAX_EMAIL = 320


def valid_email(address: str) -> bool:
    """An address a contact may be registered with."""
    return bool(_EMAIL.match(address))


def _field(value: str, what: str, limit: int, required: bool = False) -> str:
    value = " ".join(value.split()) if "\n" not in value else value.strip()
    if required and not value:
        raise ActionError(N_("%(what)sを入力してください"), what=what)
    if len(value) > limit:
        raise ActionError(N_("%(what)sは%(limit)s文字以内にしてください"), what=what, limit=limit)
    return value


def update_customer(session: Session, customer: Customer, *, company: str, department: str,
                    address: str) -> None:
    company = _field(company, N_("会社名"), 200, required=True)
    clash = session.scalar(
        select(Customer.id).where(Customer.company == company, Customer.id != customer.id)
    )
    if clash is not None:
        raise ActionError(N_("会社名「%(company)s」は別の顧客で使われています"), company=company)
    customer.company = company
    customer.department = _field(department, N_("部署"), 200)
    customer.address = _field(address, N_("住所"), 400)


def update_contract(contract: Contract, fields: Mapping[str, str], *,
                    products: Products | None, now: datetime) -> int:
    """The contract's fields as the web desk's form gives them (the CSV's columns).

    The periods they give are merged into the history (``ticketing.contracts``);
    returns how many were added or corrected.
    """
    try:
        details = read_details(fields, products)
    except TermsError as exc:
        raise ActionError(exc.message, **exc.values) from None
    return apply_details(contract, details, origin="desk", now=now)


def renew_contract(contract: Contract, now: datetime) -> ContractPeriod:
    """The next period of the contract, as ``madoguchi contracts renew`` adds it."""
    try:
        return renew(contract, now=now, origin="renewal")
    except TermsError as exc:
        raise ActionError(exc.message, **exc.values) from None


def update_contact(session: Session, contact: Contact, *, name: str, phone: str, fax: str,
                   emails: str, contract_ids: Collection[int] | None = None) -> None:
    """The contact's name, numbers and addresses; with ``contract_ids``, the contracts of
    its company it is registered for (窓口担当者 per contract)."""
    addresses = list(dict.fromkeys(e.strip().lower() for e in emails.split() if e.strip()))
    bad = [a for a in addresses if not valid_email(a) or len(a) > MAX_EMAIL]
    if bad:
        raise ActionError(N_("メールアドレスが正しくありません: %(addresses)s"),
                          addresses=', '.join(bad[:3]))
    contact.name = _field(name, N_("氏名"), 200, required=True)
    contact.phone = _field(phone, N_("電話番号"), 50)
    contact.fax = _field(fax, N_("FAX番号"), 50)
    keep = [e for e in contact.emails if e.email in addresses]
    have = {e.email for e in keep}
    contact.emails = keep + [ContactEmail(email=a) for a in addresses if a not in have]
    if contract_ids is not None:
        wanted = set(contract_ids)
        own = session.scalars(select(Contract).where(Contract.customer_id == contact.customer_id))
        contact.contracts = [k for k in own if k.id in wanted]
    session.flush()


def register_contact(session: Session, contract: Contract, address: str, name: str) -> Contact:
    """``address`` as a registered contact of ``contract``: the customer's contact of that
    address if there is one, else a new one named ``name``.
    """
    address = address.lower()
    contact = session.scalar(
        select(Contact).join(ContactEmail)
        .where(Contact.customer_id == contract.customer_id, ContactEmail.email == address)
    )
    if contact is None:
        contact = Contact(customer_id=contract.customer_id, name=(name or address)[:200],
                          phone="", fax="")
        contact.emails.append(ContactEmail(email=address))
        session.add(contact)
    if contract not in contact.contracts:
        contact.contracts.append(contract)
    session.flush()
    return contact
