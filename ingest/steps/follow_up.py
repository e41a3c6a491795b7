"""A customer's follow-up wakes the conversation: back to the desk, marked, re-sorted.

After placement (and mail_trust): a message that joined or reopened a stored
ticket is the customer writing again (``rules.conversation``, event
``customer_wrote``): an answered, pending or solved ticket comes back to the
desk as ``customer_replied`` with a next-response due on its product's
calendar, the deadline the queue sorts by. A follow-up that says it is urgent
(``[conversation] urgent_words``: 至急, 緊急...) flags the ticket ``urgent``.
Machine mail never gets here (``machine_mail`` ends its way), nor a message
opening a ticket, nor one joining a ticket this batch opens (it is new).
"""

from __future__ import annotations

from madoguchi.ingest.arrival import Arrival, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.inbound import Outcome
from madoguchi.ticketing import conversation
from madoguchi.ticketing.history import record
from madoguchi.ticketing.history_line import say
from madoguchi.ticketing.models import Ticket, TicketFlag
from madoguchi.ticketing.rules.conversation import Event, says_urgent
from madoguchi.ticketing.rules.threading import ThreadAction
from madoguchi.ticketing.vocabulary import Channel, Flag

_FOLLOW_UPS = (ThreadAction.JOIN, ThreadAction.REOPEN)


def _run(batch: Batch, arrival: Arrival) -> Outcome | None:
    ticket, decision = arrival.ticket, arrival.decision
    if (arrival.new_ticket is not None or not isinstance(ticket, Ticket)
            or decision is None or decision.action not in _FOLLOW_UPS):
        return None
    msg, fax = arrival.prepared.message, arrival.prepared.fax
    channel = Channel.FAX if fax is not None else Channel.EMAIL
    who = (msg.from_name or msg.from_addr) if msg is not None else "FAX"
    conversation.move(batch.session, ticket, Event.CUSTOMER_WROTE, None, arrival.when,
                      deadlines=batch.deadlines, tz=batch.settings.tz,
                      why=say("%(who)s からFAX", who=who) if channel is Channel.FAX
                      else say("%(who)s からメール", who=who))
    subject = msg.subject if msg is not None else ""
    text = fax.text if fax is not None else (msg.text if msg is not None else "")
    if says_urgent(subject, text, batch.settings.conversation.urgent_words) and all(
            f.flag is not Flag.URGENT for f in ticket.flags):
        ticket.flags.append(TicketFlag(flag=Flag.URGENT, detail=subject[:200] or None))
        record(batch.session, ticket.id, None, say("フラグ: 至急（%(who)s からの返信）", who=who),
               at=arrival.when, kind="flag", detail={"added": Flag.URGENT.value})
    return None


STEP = Step("follow_up", _run)
