"""The first-response deadline of a ticket: the one place every caller asks.

The pipeline opening a ticket, triage numbering a FAX, staff accepting a
flagged mail as a customer's, and ``madoguchi sla due`` all ask
``Deadlines.first_response``: the product's calendar and policy for the kind
of inquiry (``ticketing.products``: the contract's product, else the one the
message came to, else the desk's default; a desk without products has one,
``[calendar]`` and ``[sla]``), with the contract's own terms winning when the
ticket has a contract. The rule itself is ``sla.first_response_due``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
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
