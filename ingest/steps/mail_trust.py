"""A follow-up the desk cannot vouch for joins its ticket flagged, and marked.

The rule is ``ticketing.rules.mail_trust.follow_up_unverified`` (a forged or
unauthenticated From, or a reference header from someone not of the
thread). Here, after placement: the ticket it joins gets the
``unverified_sender`` flag and the message is staged as unverified
(``message`` then counts its writer as no participant).
"""

from __future__ import annotations

from madoguchi.ingest.arrival import Arrival, BatchStep, Step
from madoguchi.ingest.batch import Batch
from madoguchi.ingest.drafts import NewTicket
from madoguchi.ingest.inbound import Outcome
from madoguchi.ticketing.dialect import dialect_of
from madoguchi.ticketing.history import record_all
from madoguchi.ticketing.history_line import say
from madoguchi.ticketing.models import TicketFlag, table_of
from madoguchi.ticketing.rules.mail_trust import follow_up_unverified
from madoguchi.ticketing.vocabulary import Flag


def _run(batch: Batch, arrival: Arrival) -> Outcome | None:
    decision = arrival.decision
    if decision is None or not follow_up_unverified(decision, arrival.sender, arrival.vouched):
        return None
    arrival.unverified = True
    ticket = arrival.ticket
    if isinstance(ticket, NewTicket) and ticket.id is None:
        ticket.flags.add(Flag.UNVERIFIED_SENDER)  # written with its rows
    elif ticket is not None and ticket.id is not None:
        batch.staged.unverified_tickets.add(ticket.id)  # stored: one INSERT per chunk
    return None


STEP = Step("mail_trust", _run)


def _write_flags(batch: Batch) -> None:
    wanted = batch.staged.unverified_tickets
    if not wanted:
        return
    session = batch.session
    flagged = session.scalars(dialect_of(session).insert_skipping_conflicts(
        table_of(TicketFlag),
        [{"ticket_id": t, "flag": Flag.UNVERIFIED_SENDER} for t in sorted(wanted)],
        ["ticket_id", "flag"],
    ).returning(table_of(TicketFlag).c.ticket_id)).all()
    # The newly flagged: a line in each one's history, in one INSERT.
    record_all(session, list(flagged), None,
               say("フラグ: 送信者未確認（確認できない送信者からの返信）"),
               at=batch.now(), kind="flag", detail={"added": Flag.UNVERIFIED_SENDER.value})
    batch.staged.unverified_tickets = set()


FLAGS = BatchStep("unverified_flags", _write_flags)
