"""The first-response deadline of a ticket: the one place every caller asks.

The pipeline opening a ticket, triage numbering a FAX, staff accepting a
flagged mail as a customer's, and ``madoguchi sla due`` all ask
``Deadlines.first_response``: the product's calendar and policy for the kind
of inquiry (``ticketing.products``: the contract's product, else the one the
message came to, else the desk's default; a desk without products has one,
``[calendar]`` and ``[sla]``), with the contract's own terms winning when the
ticket has a contract. The rule itself is ``sla.first_response_due``.

After the first response, a customer's reply is due again by
``Deadlines.next_response``: the product's ``next_response`` policy (its own,
else ``[conversation.next_response]``), the contract's
``sla_override.next_response`` winning, counted on the product's calendar
(``ticketing.conversation`` asks it). ``Deadlines.auto_close_at`` is when a
solved ticket's silence closes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Protocol

from madoguchi.config import Settings
from madoguchi.ticketing.calendar import BusinessCalendar
from madoguchi.ticketing.products import Product, Products
from madoguchi.ticketing.sla import (
    Deadline,
    FirstResponsePolicy,
    contract_policy,
    first_response_due,
)
from madoguchi.ticketing.vocabulary import InquiryKind

__all__ = ["ContractTerms", "Deadline", "Deadlines"]

# The next response when nothing is configured: one business day (8 hours).
_NEXT_RESPONSE = FirstResponsePolicy(kind="business_hours", business_time=timedelta(hours=8))


class ContractTerms(Protocol):
    """What the deadline reads of a contract (a ``models.Contract`` is one).

    A contract may also have a ``product`` (its product's name); one without
    it gets the default product's terms.
    """

    @property
    def support_number(self) -> str: ...

    @property
    def sla_override(self) -> Mapping[str, object] | None: ...


class Deadlines:
    """The desk's first-response rule: each product's calendar and policies, contracts' terms.

    ``calendar`` and ``policy`` are the default product's (general inquiries).
    """

    def __init__(self, calendar: BusinessCalendar, policy: FirstResponsePolicy,
                 products: Products | None = None) -> None:
        self.calendar = calendar
        self.policy = policy
        self.products = products if products is not None else Products.single(calendar, policy)

    @classmethod
    def from_settings(cls, settings: Settings) -> Deadlines:
        products = Products.from_settings(settings)
        default = products.default
        return cls(default.calendar, default.policy(InquiryKind.GENERAL), products)

    def product_for(self, contract: ContractTerms | None = None,
                    product: str | None = None) -> Product:
        """The contract's product; without a contract, ``product`` (a name); else the default."""
        if contract is not None:
            name = getattr(contract, "product", "") or ""
            return self.products.get(str(name))
        return self.products.get(product)

    def policy_for(self, contract: ContractTerms | None, *, product: str | None = None,
                   kind: InquiryKind = InquiryKind.GENERAL) -> FirstResponsePolicy:
        """The product's rule for the kind of inquiry; the contract's ``sla_override`` over it."""
        base = self.product_for(contract, product).policy(kind)
        if contract is None:
            return base
        return contract_policy(base, contract.sla_override, contract=contract.support_number)

    def first_response(
        self, received_at: datetime, contract: ContractTerms | None = None, *,
        product: str | None = None, kind: InquiryKind = InquiryKind.GENERAL,
    ) -> Deadline:
        """When work on an inquiry received at ``received_at`` starts, and when it is due."""
        calendar = self.product_for(contract, product).calendar
        return first_response_due(received_at, calendar,
                                  self.policy_for(contract, product=product, kind=kind))

    def next_response_policy(self, contract: ContractTerms | None, *,
                             product: str | None = None) -> FirstResponsePolicy:
        """The product's next-response rule; the contract's ``sla_override.next_response``."""
        base = self.product_for(contract, product).next_response or _NEXT_RESPONSE
        override = contract.sla_override if contract is not None else None
        nested = override.get("next_response") if override else None
        if contract is None or not isinstance(nested, Mapping):
            return base
        return contract_policy(base, nested, contract=contract.support_number)

    def next_response(self, replied_at: datetime, contract: ContractTerms | None = None, *,
                      product: str | None = None) -> Deadline:
        """When the desk's answer to a customer's reply received at ``replied_at`` is due."""
        calendar = self.product_for(contract, product).calendar
        return first_response_due(replied_at, calendar,
                                  self.next_response_policy(contract, product=product))

    def auto_close_at(self, solved_at: datetime, *, contract: ContractTerms | None = None,
                      product: str | None = None) -> datetime | None:
        """When a ticket solved at ``solved_at`` closes if the customer says nothing; None:
        never (``auto_close_business_days = 0``)."""
        chosen = self.product_for(contract, product)
        if chosen.auto_close_days <= 0:
            return None
        calendar = chosen.calendar
        day = solved_at.astimezone(calendar.tz).date()
        for _ in range(chosen.auto_close_days):
            day = calendar.next_business_day(day)
        return calendar.close_of_business_day(day)
