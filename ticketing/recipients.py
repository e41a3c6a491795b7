"""A reply's default To and Cc, from the ticket's thread (``rules.recipients`` decides).

The web desk's reply form shows them, editable; ``replies.send_mail_reply``
sends what staff leave there.
"""

from __future__ import annotations

from madoguchi.config import Settings
from madoguchi.ticketing.mail_headers import usable_address
from madoguchi.ticketing.models import Channel, Direction, Message, Ticket
from madoguchi.ticketing.products import Products
from madoguchi.ticketing.rules.recipients import MailFacts, Recipients, reply_recipients

__all__ = ["desk_addresses", "reply_addresses"]


def desk_addresses(settings: Settings, products: Products) -> frozenset[str]:
    """The desk's own addresses: it sends from them and receives at them."""
    found = {settings.desk_address.lower(), *products.own_addresses()}
    for product in (*products.all, products.default):
        found.update(a.lower() for a in product.addresses)
    return frozenset(found)


def _facts(message: Message) -> MailFacts:
    return MailFacts(message.sender, tuple(message.recipients or ()), tuple(message.cc or ()),
                     unverified=message.unverified_sender,
                     inbound=message.direction == Direction.IN)


def _contacts(ticket: Ticket) -> list[str]:
    """The ticket's registered contacts' addresses: its own contact's first."""
    found: list[str] = []
    if ticket.contact is not None:
        found += [e.email for e in ticket.contact.emails]
    if ticket.contract is not None:
        found += [e.email for c in ticket.contract.contacts for e in c.emails]
    return list(dict.fromkeys(a for a in found if usable_address(a)))


def reply_addresses(ticket: Ticket, answered: Message | None,
                    own: frozenset[str]) -> Recipients:
    """To and Cc of a reply to ``answered`` (reply-all), a registered contact first."""
    thread = [m for m in ticket.messages if m.channel == Channel.EMAIL and not m.auto_kind
              and m.direction != Direction.NOTE]
    facts = _facts(answered) if answered is not None and answered.channel == Channel.EMAIL \
        else None
    return reply_recipients(facts, [_facts(m) for m in thread], contacts=_contacts(ticket),
                            own=own)
