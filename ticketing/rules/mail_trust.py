"""May a follow-up join its thread as its sender's, or must staff look first?

``decide_thread`` (``ticketing.rules.threading``) decides *where* a mail
goes. This rule decides whether the desk may take it as coming from whom it
says, once it joins (or reopens) a ticket: a From address proves nothing
unless the desk's own mail server vouched for it (DMARC pass, see
``ticketing.rules.authenticity``), and a reference header proves only that
the writer saw one message of the thread, not that the writer is of it.
An unverified follow-up is still accepted — nothing is lost — but the
ticket is flagged ``unverified_sender``, the message is marked, its writer
becomes no participant of the thread, and it is never the default recipient
of a reply.
"""

from __future__ import annotations

from madoguchi.ticketing.rules.threading import ThreadAction, ThreadDecision

_JOINS = (ThreadAction.JOIN, ThreadAction.REOPEN)


def follow_up_unverified(decision: ThreadDecision, sender: str, vouched: bool) -> bool:
    """True when a mail joins a ticket without the desk being able to vouch for its sender."""
    ticket = decision.ticket
    if decision.action not in _JOINS or ticket is None:
        return False
    if not vouched:
        return True  # a forged From reads exactly like a real one
    if decision.rule == "references":
        who = sender.lower()
        return not who or (who not in ticket.participants and who not in ticket.contact_emails)
    return False
