"""The first-response deadline of a ticket: the one place every caller asks.

The pipeline opening a ticket, triage numbering a FAX, staff accepting a
flagged mail as a customer's, and ``madoguchi sla due`` all ask
``Deadlines.first_response``: the desk's calendar and default policy
(``[calendar]``, ``[sla]``), with the contract's own terms winning when the
ticket has a contract. The rule itself is ``sla.first_response_due``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from madoguchi.config import Settings
from madoguchi.ticketing.calendar import BusinessCalendar
from madoguchi.ticketing.sla import (
    Deadline,
    FirstResponsePolicy,
    contract_policy,
    first_response_due,
)

__all__ = ["ContractTerms", "Deadline", "Deadlines"]


class ContractTerms(Protocol):
    """What the deadline reads of a contract (a ``models.Contract`` is one)."""

    @property
    def support_number(self) -> str: ...

    @property
    def sla_override(self) -> Mapping[str, object] | None: ...


class Deadlines:
    """The desk's first-response rule: one calendar, one default policy, contracts' terms."""

    def __init__(self, calendar: BusinessCalendar, policy: FirstResponsePolicy) -> None:
        self.calendar = calendar
        self.policy = policy

    @classmethod
    def from_settings(cls, settings: Settings) -> Deadlines:
        return cls(
            BusinessCalendar.from_settings(settings.calendar, settings.tz),
            FirstResponsePolicy.from_settings(settings.sla),
        )

    def policy_for(self, contract: ContractTerms | None) -> FirstResponsePolicy:
        """The contract's terms (its ``sla_override``) over the desk's default."""
        if contract is None:
            return self.policy
        return contract_policy(self.policy, contract.sla_override,
                               contract=contract.support_number)

    def first_response(
        self, received_at: datetime, contract: ContractTerms | None = None
    ) -> Deadline:
        """When work on an inquiry received at ``received_at`` starts, and when it is due."""
        return first_response_due(received_at, self.calendar, self.policy_for(contract))
