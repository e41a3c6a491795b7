"""Finding a customer or a contact by whatever staff have at hand.

A company name, a department, a contact's name written or read (``やまだ``,
``ヤマダ`` and ``ﾔﾏﾀﾞ`` find 山田), a phone or FAX number, an e-mail address
or a support number, in any width. The folded keys are written with each
row (``ticketing.search_index``, ``rules/search_text.lookup_key``); here the
query is folded the same way and every word must be found, each in any of
the fields. Directories are small (thousands of rows): LIKE over the keys.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, or_, select

from madoguchi.ticketing.models import Contact, ContactEmail, Contract, Customer
from madoguchi.ticketing.rules.search_text import digits, fold, lookup_fold

# Fewer digits than this are part of a name or an address, not a number.
MIN_NUMBER_DIGITS = 4


def _words(query: str) -> list[str]:
    return list(dict.fromkeys(lookup_fold(w) for w in query.split() if w.strip()))


def _number(query: str) -> str | None:
    """The digits of a query that is a number (a phone, FAX or support number)."""
    found = digits(query)
    rest = [c for c in fold(query) if not c.isdigit() and c not in " -()+./"]
    return found if len(found) >= MIN_NUMBER_DIGITS and not rest else None


def _contact_word(word: str) -> ColumnElement[bool]:
    return or_(
        Contact.search_key.contains(word, autoescape=True),
        Contact.id.in_(select(ContactEmail.contact_id).where(
            ContactEmail.email.contains(word.lower(), autoescape=True))),
    )


def _customer_word(word: str) -> ColumnElement[bool]:
    return or_(
        Customer.search_key.contains(word, autoescape=True),
        Customer.id.in_(select(Contact.customer_id).where(_contact_word(word))),
    )


def customer_condition(query: str) -> ColumnElement[bool] | None:
    """Customers the query finds (None: an empty query, no condition)."""
    words = _words(query)
    if not words:
        return None
    condition = and_(*(_customer_word(w) for w in words))
    number = _number(query)
    if number is None:
        return condition
    return or_(
        condition,
        Customer.id.in_(select(Contract.customer_id).where(Contract.support_number == number)),
        Customer.id.in_(select(Contact.customer_id).where(
            Contact.search_key.contains(number, autoescape=True))),
    )


def contact_condition(query: str) -> ColumnElement[bool] | None:
    """Contacts the query finds, by their own fields or their company's (joined as Customer)."""
    words = _words(query)
    if not words:
        return None
    condition = and_(*(or_(_contact_word(w), Customer.search_key.contains(w, autoescape=True))
                       for w in words))
    number = _number(query)
    if number is None:
        return condition
    return or_(condition, Contact.search_key.contains(number, autoescape=True),
               Contact.contracts.any(Contract.support_number == number))
