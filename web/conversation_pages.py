"""The ticket page's conversation parts: its history in the thread, the state form, the
reply's recipients. ``routes.ticket`` adds ``ticket_context`` to the page; the status
and reply forms read the pending reminder date with ``pending_until``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from madoguchi.ticketing.actions import ActionError
from madoguchi.ticketing.history import Entry, events_of
from madoguchi.ticketing.models import Message, Ticket
from madoguchi.ticketing.recipients import desk_addresses, reply_addresses
from madoguchi.web.http import Ctx
from madoguchi.web.i18n import gettext as _


def _split(entries: list[Entry], messages: list[Message]) -> tuple[dict[int, list[Entry]],
                                                                  list[Entry]]:
    """Each history line before the first message received after it; the rest at the end."""
    before: dict[int, list[Entry]] = {}
    rest = list(entries)
    for message in messages:
        due = [e for e in rest if e.at < message.received_at]
        if due:
            before[message.id] = due
            rest = rest[len(due):]
    return before, rest


def ticket_context(ctx: Ctx, ticket: Ticket, answered: Message | None) -> dict[str, Any]:
    """What ticket.html's conversation parts read: history lines, default To and Cc."""
    entries = events_of(ctx.db, [ticket.id])[ticket.id]
    before, after = _split(entries, list(ticket.messages))
    recipients = reply_addresses(ticket, answered,
                                 desk_addresses(ctx.settings, ctx.storage.deadlines.products))
    return {"history_before": before, "history_after": after,
            "reply_to": ", ".join(recipients.to), "reply_cc": ", ".join(recipients.cc)}


def pending_until(ctx: Ctx) -> datetime | None:
    """The pending reminder date of the form (``datetime-local``, the desk's zone)."""
    value = ctx.field("pending_until").strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ActionError(_("保留の再通知日時が正しくありません")) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ctx.settings.tz)
    return moment
