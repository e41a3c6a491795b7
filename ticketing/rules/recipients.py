"""Who a reply goes to: reply-all from the message answered, a registered contact first.

A pure rule over the thread's facts. The reply answers one message (the
newest mail of a person, or the one staff chose): its writer and everyone it
went to, the customer's Cc kept, the desk's own addresses removed (To/Cc as
mailers do for "reply all"). The default To is a registered contact of the
ticket when one took part in the thread (wrote a message the desk could
vouch for, or was sent or copied one); the writer answered, when not that
contact, is copied. A writer the desk could not vouch for (``unverified``: a
forged From, a stranger who joined through a reference header) is neither To
nor Cc unless the address is a registered contact's own. Staff edit both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class MailFacts:
    """What the rule reads of one message of the thread (addresses as written)."""

    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    unverified: bool = False
    inbound: bool = True


@dataclass(frozen=True)
class Recipients:
    to: tuple[str, ...]
    cc: tuple[str, ...]


def _add(into: dict[str, str], addresses: Iterable[str], drop: set[str]) -> None:
    for address in addresses:
        key = address.strip().lower()
        if key and "@" in key and key not in drop and key not in into:
            into[key] = address.strip()


def reply_recipients(answered: MailFacts | None, thread: Sequence[MailFacts], *,
                     contacts: Sequence[str], own: Iterable[str]) -> Recipients:
    """To and Cc of a reply to ``answered`` (None: no mail to answer) in ``thread``.

    ``contacts``: the registered contacts' addresses of the ticket, most
    relevant first; ``own``: the desk's addresses, never a recipient.
    """
    registered = {c.lower() for c in contacts}
    drop = {a.lower() for a in own}
    took_part: set[str] = set()
    for mail in thread:
        if mail.inbound and not mail.unverified:
            took_part.add(mail.sender.lower())
        if not mail.inbound:
            took_part.update(a.lower() for a in (*mail.to, *mail.cc))
    contact = next((c for c in contacts if c.lower() in took_part and c.lower() not in drop),
                   None)
    everyone: dict[str, str] = {}
    if answered is not None:
        writer = answered.sender.lower()
        if not answered.unverified or writer in registered:
            _add(everyone, [answered.sender], drop)
        _add(everyone, (*answered.to, *answered.cc), drop)
    to: dict[str, str] = {}
    if contact is not None:
        _add(to, [contact], drop)
    elif answered is not None and answered.sender.lower() in everyone:
        _add(to, [answered.sender], drop)
    elif contacts:
        _add(to, contacts[:1], drop)
    cc: dict[str, str] = {}
    _add(cc, everyone.values(), drop | set(to))
    return Recipients(tuple(to.values()), tuple(cc.values()))
