"""Plain-text rendering of the queue and of a threaded ticket, for a terminal."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime

from madoguchi.config import Settings
from madoguchi.ticketing.conversation import STATE_LABELS
from madoguchi.ticketing.history import Entry
from madoguchi.ticketing.models import Ticket
from madoguchi.ticketing.views import display_number, display_written


def _width(text: str) -> int:
    # East Asian wide characters take two terminal cells.
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cell(text: str, width: int) -> str:
    out, used = "", 0
    for ch in text:
        w = _width(ch)
        if used + w > width:
            break
        out += ch
        used += w
    return out + " " * (width - used)


def _local(moment: datetime | None, settings: Settings) -> str:
    return moment.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M") if moment else "-"


def render_queue(
    tickets: Sequence[Ticket], settings: Settings, now: datetime | None = None
) -> str:
    now = now or datetime.now(UTC)
    header = (
        f"{'':2}{_cell('number', 15)} {_cell('status', 8)} {_cell('due', 16)} "
        f"{_cell('channel', 7)} {_cell('customer', 22)} {_cell('support no.', 14)} "
        f"{_cell('flags', 24)} subject"
    )
    lines = [header]
    for t in tickets:
        overdue = (
            t.first_response_due is not None
            and t.first_responded_at is None
            and t.first_response_due < now
        )
        lines.append(
            f"{'! ' if overdue else '  '}{_cell(t.number, 15)} {_cell(t.status.value, 8)} "
            f"{_cell(_local(t.response_due, settings), 16)} "
            f"{_cell(t.channel.value, 7)} "
            f"{_cell(t.customer.company if t.customer else '-', 22)} "
            f"{_cell(display_number(t, settings.support_number) or '-', 14)} "
            f"{_cell(','.join(t.flag_names) or '-', 24)} "
            f"{t.subject}"
        )
    lines.append(f"{len(tickets)} tickets" + ("  (! = first response overdue)" if any(
        line.startswith("!") for line in lines) else ""))
    return "\n".join(lines)


def _conversation(ticket: Ticket, settings: Settings) -> list[str]:
    lines = [f"  state:          {ticket.state.value} ({STATE_LABELS[ticket.state]})"]
    if ticket.next_response_due is not None:
        lines.append(f"  next response:  due {_local(ticket.next_response_due, settings)} "
                     f"(customer replied {_local(ticket.customer_replied_at, settings)})")
    if ticket.pending_until is not None:
        lines.append(f"  pending until:  {_local(ticket.pending_until, settings)}")
    if ticket.solved_at is not None:
        lines.append(f"  solved:         {_local(ticket.solved_at, settings)}")
    return lines


def render_ticket(ticket: Ticket, settings: Settings, history: Sequence[Entry] = ()) -> str:
    """The ticket, its conversation's state, its history (oldest first) and its thread."""
    out = [
        f"{ticket.number}  [{ticket.status.value}]  {ticket.subject}",
        *_conversation(ticket, settings),
        f"  channel:        {ticket.channel.value}",
        f"  customer:       {ticket.customer.company if ticket.customer else '-'}",
        f"  support number: {display_number(ticket, settings.support_number) or '-'}",
        # The export's field name: what the customer wrote, check digit or not.
        f"  support_number_written: {display_written(ticket, settings.support_number) or '-'}",
        f"  flags:          {', '.join(ticket.flag_names) or '-'}",
        f"  received:       {_local(ticket.received_at, settings)}",
        f"  first response: due {_local(ticket.first_response_due, settings)}, "
        f"done {_local(ticket.first_responded_at, settings)}",
    ]
    if ticket.contract:
        out.append(
            f"  contract:       {ticket.contract.product} "
            f"{ticket.contract.period_start} – {ticket.contract.period_end}"
        )
    if ticket.linked_ticket:
        out.append(f"  follows:        {ticket.linked_ticket.number}")
    if history:
        out.append("")
        out.append("--- history")
        out.extend(f"    {_local(e.at, settings)}  {e.by}: {e.what}" for e in history)
    for i, m in enumerate(ticket.messages, 1):
        arrow = "←" if m.direction.value == "in" else "→"
        out.append("")
        out.append(
            f"--- {i}. {arrow} {m.channel.value} {_local(m.received_at, settings)}  "
            f"{m.sender_name} <{m.sender}>" + (f"  ({m.auto_kind})" if m.auto_kind else "")
        )
        out.append(f"    Subject: {m.subject}")
        out.extend("    " + line for line in m.text.rstrip().splitlines())
        for a in m.attachments:
            out.append(f"    [attachment] {a.filename} ({a.content_type}, {a.size} bytes)")
    return "\n".join(out)
