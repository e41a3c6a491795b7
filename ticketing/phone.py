"""The telephone as a channel: find the caller, open a ticket from a call, log any call.

A call the customer made is inbound (the customer's number is the sender's);
one the desk made is outbound (their number is the recipient). Each call's
direction, party, number and duration are kept beside its message
(``PhoneCall``). A ticket opened from a call gets its contract's terms, its
flags and its first-response due as a mail would (``rules/entitlement.py``,
``deadlines.py`` through ``triage.apply_entitlement``): the caller is heard
at once, but the answer is still due.

``find_callers`` finds who is calling through the customer lookup
(``ticketing.customer_lookup``).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from madoguchi.config import Settings
from madoguchi.ticketing import customer_lookup, store
from madoguchi.ticketing.actions import (
    ActionError,
    add_message,
    ensure_workable,
    record_note,
    required_text,
    responded,
)
from madoguchi.ticketing.deadlines import Deadlines
from madoguchi.ticketing.models import (
    Channel,
    Contact,
    Contract,
    Customer,
    Direction,
    Message,
    StaffUser,
    Ticket,
    TicketStatus,
)
from madoguchi.ticketing.rules.entitlement import decide_entitlement
from madoguchi.ticketing.rules.marks import N_
from madoguchi.ticketing.rules.search_text import digits
from madoguchi.ticketing.toolkit_models import PhoneCall
from madoguchi.ticketing.triage import apply_entitlement

DIRECTIONS = {"in": N_("着信（お客様から）"), "out": N_("発信（当方から）")}
MAX_CALLERS = 20
MAX_DURATION_MINUTES = 600


def find_callers(session: Session, query: str, limit: int = MAX_CALLERS) -> list[Contact]:
    """Contacts found by phone or FAX number, name or its kana reading, e-mail, company
    or support number (``ticketing.customer_lookup``, full/half width alike)."""
    where = customer_lookup.contact_condition(query)
    if where is None:
        return []
    return list(session.scalars(
        select(Contact).join(Customer).where(where)
        .options(selectinload(Contact.customer).selectinload(Customer.contracts),
                 selectinload(Contact.contracts))
        .order_by(Customer.company, Contact.name).limit(limit)
    ))


@dataclass(frozen=True)
class Call:
    """A call as staff note it down."""

    direction: str  # "in" or "out"
    party: str  # the customer's side: who
    number: str  # and their number
    minutes: str  # as typed: "", "5", "12.5"
    summary: str


def _read(call: Call) -> tuple[str, str, str, int | None, str]:
    if call.direction not in DIRECTIONS:
        raise ActionError(N_("着信か発信かを選んでください"))
    number = " ".join(unicodedata.normalize("NFKC", call.number).split())[:50]
    if number and len(digits(number)) < 3:
        raise ActionError(N_("電話番号が正しくありません（数字とハイフンで入力してください）"))
    seconds: int | None = None
    minutes = unicodedata.normalize("NFKC", call.minutes).strip()
    if minutes:
        try:
            value = float(minutes)
        except ValueError:
            raise ActionError(N_("通話時間は分で入力してください（例: 5）")) from None
        if not 0 <= value <= MAX_DURATION_MINUTES:
            raise ActionError(N_("通話時間は0〜%(n)s分で入力してください"), n=MAX_DURATION_MINUTES)
        seconds = round(value * 60)
    party = " ".join(call.party.split())[:200]
    return call.direction, party, number, seconds, required_text(call.summary, N_("通話内容"))


def _record(session: Session, ticket: Ticket, user: StaffUser | None, call: Call,
            now: datetime) -> Message:
    direction, party, number, seconds, summary = _read(call)
    if direction == "in":
        message = add_message(session, ticket, user, direction=Direction.IN,
                              channel=Channel.PHONE, text=summary, now=now,
                              subject="電話（着信）")
        message.sender, message.sender_name = number, party
    else:
        message = add_message(session, ticket, user, direction=Direction.OUT,
                              channel=Channel.PHONE, text=summary, now=now,
                              subject="電話（発信）", recipients=[number] if number else [])
    session.add(PhoneCall(message=message, direction=direction, party=party, number=number,
                          duration_seconds=seconds))
    return message


def calls_of(session: Session, ticket: Ticket) -> dict[int, PhoneCall]:
    """The calls behind a ticket's phone messages, by message id."""
    ids = [m.id for m in ticket.messages if m.channel == Channel.PHONE]
    if not ids:
        return {}
    return {c.message_id: c for c in session.scalars(
        select(PhoneCall).where(PhoneCall.message_id.in_(ids)))}


def log_call(session: Session, ticket: Ticket, user: StaffUser | None, call: Call,
             now: datetime) -> Message:
    """A call on a ticket, either way; speaking with the customer is a response."""
    ensure_workable(ticket)
    message = _record(session, ticket, user, call, now)
    responded(session, ticket, user, now)
    return message


def open_from_call(session: Session, *, contact_id: int, contract_id: int | None,
                   subject: str, call: Call, user: StaffUser | None, settings: Settings,
                   deadlines: Deadlines, now: datetime) -> Ticket:
    """A new ticket for a caller's new problem, on the contract staff chose."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise ActionError(N_("お客様（窓口担当者）が見つかりません"))
    contract = session.get(Contract, contract_id) if contract_id is not None else None
    if contract_id is not None and (contract is None or
                                    contract.customer_id != contact.customer_id):
        raise ActionError(N_("契約を選び直してください（この会社の契約ではありません）"))
    subject = " ".join(required_text(subject, N_("件名"), 200).split())
    ticket = Ticket(number=store.next_ticket_number(session, settings.threading.ticket_prefix,
                                                    now.astimezone(settings.tz).year),
                    status=TicketStatus.OPEN, channel=Channel.PHONE, subject=subject,
                    received_at=now, customer_id=contact.customer_id, contact_id=contact.id,
                    support_number_written=contract.support_number if contract else None)
    session.add(ticket)
    session.flush()
    decision = decide_entitlement(
        support_number=contract.support_number if contract else None,
        contract_for_number=store.contract_facts(contract) if contract else None,
        sender_contacts=store.contacts_by_ids(session, [contact.id]),
        received_day=now.astimezone(settings.tz).date(),
    )
    apply_entitlement(ticket, decision, contract, settings, deadlines)
    # A caller without a contract chosen stays the caller's, as staff found them.
    ticket.customer_id = ticket.customer_id or contact.customer_id
    ticket.contact_id = ticket.contact_id or contact.id
    _record(session, ticket, user, call, now)
    if call.direction != "in":
        record_note(session, ticket, user, "当方からの電話で受け付けました", now)
    return ticket
