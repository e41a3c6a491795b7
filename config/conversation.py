"""After the first response: how soon the next one is due, when silence closes, what is urgent.

TOML (``[conversation]``; a product may give its own ``[products.next_response]``
and ``auto_close_business_days``; a contract's ``sla_override`` may give
``"next_response": {"policy": "business_hours", "hours": 4}``)::

    [conversation]
    auto_close_business_days = 5      # a solved ticket closes after this silence; 0: never
    urgent_words = ["至急", "緊急"]    # a follow-up saying one of them is flagged "urgent"
    [conversation.next_response]      # as [sla]: after a customer's reply to an answer
    policy = "business_hours"
    business_hours = 8
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from madoguchi.config.business import SlaSettings


def _next_response_default() -> SlaSettings:
    # One business day (8 business hours) from the customer's reply.
    return SlaSettings(policy="business_hours", business_hours=8)


class ConversationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    next_response: SlaSettings = Field(default_factory=_next_response_default)
    # Business days (on the product's calendar) a solved ticket stays solved with
    # no word from the customer before it is closed; 0 disables auto-close.
    auto_close_business_days: int = Field(5, ge=0, le=365)
    # A customer's follow-up whose subject or own lines hold one (NFKC, case ignored).
    urgent_words: list[str] = Field(default_factory=lambda: [
        "至急", "緊急", "大至急", "急ぎ", "急いで", "urgent", "asap",
    ])
