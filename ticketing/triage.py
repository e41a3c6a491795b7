"""Triage: what staff decide about a ticket the desk could not place by itself.

* A FAX whose support number could not be read (``unreadable_fax``): nothing
  is guessed by the reader; staff look at the page images and give the
  number, which must pass its check digit (``assign_fax_number``). When the
  sending machine's FAX number is a registered contact's, the queue shows
  that customer and its contracts as a suggestion (``sender_suggestion``).
* A flagged inquiry (a stranger, an expired contract, an unknown number):
  staff take it on as a customer's (``accept_as_customer``) or set it aside
  as out of scope (``mark_out_of_scope``).

Either way the ticket's contract, customer, contact and flags are what the
pipeline's own rule (``rules.entitlement.decide_entitlement``) decides from
the facts the pipeline would have had, and its first-response due time is
the one ``deadlines.Deadlines`` gives; accepting then overrides the rule's
review flags, by name (``accepted_by_staff``). A ticket still out of scope
has no due time (nothing is promised, nothing reminded or escalated); one
that had none and is accepted gets its first-response time from the moment
of acceptance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from madoguchi.config import Settings
from madoguchi.ticketing import conversation, store
from madoguchi.ticketing.actions import (
    COMMAND_LINE,
    ActionError,
    ensure_workable,
    record_note,
    required_text,
)
from madoguchi.ticketing.deadlines import Deadlines
from madoguchi.ticketing.directory import register_contact, valid_email
from madoguchi.ticketing.history import record
from madoguchi.ticketing.history_line import Line, say
from madoguchi.ticketing.models import (
    Attachment,
    Channel,
    Contact,
    Contract,
    Direction,
    Message,
    StaffUser,
    Ticket,
    TicketFlag,
)
from madoguchi.ticketing.queues import FAX_TRIAGE, MAIL_TRIAGE, REVIEW_FLAGS
from madoguchi.ticketing.rules.conversation import Event, State
from madoguchi.ticketing.rules.entitlement import (
    ContactFacts,
    Entitlement,
    decide_entitlement,
    match_fax_contact,
)
from madoguchi.ticketing.rules.marks import N_
from madoguchi.ticketing.support_number import SupportNumber, format_number, parse_support_number
from madoguchi.ticketing.vocabulary import OUT_OF_SCOPE, Flag, InquiryKind

MAX_REASON = 1_000
# What staff answer by accepting an inquiry as the customer's: who sent it,
# whether the contract still counts, which contract it is.
ACCEPT_CLEARS = frozenset(REVIEW_FLAGS)


def read_support_number(written: str, settings: Settings) -> SupportNumber:
    """The support number staff typed, checked by its check digit."""
    number = parse_support_number(written, settings.support_number)
    if number is None:
        raise ActionError(
            N_("サポートサービス番号「%(number)s」は正しくありません"
               "（桁数またはチェックディジットが合いません）"), number=written.strip()[:40])
    return number


def accepted_by_staff(decision: Entitlement) -> Entitlement:
    """The rule's decision with staff's override: the review flags are answered."""
    return replace(decision, flags=decision.flags - ACCEPT_CLEARS)


def apply_entitlement(ticket: Ticket, decision: Entitlement,
           contract: Contract | None, settings: Settings, deadlines: Deadlines,
           now: datetime | None = None) -> None:
    """The decision on the ticket; its due time from receipt, or from ``now`` (an acceptance)."""
    # The contract's number, or none: a number of no contract stays what was written.
    ticket.support_number = contract.support_number if contract is not None else None
    ticket.contract_id, ticket.customer_id = decision.contract_id, decision.customer_id
    ticket.contact_id = decision.contact_id
    details = decision.details(lambda d: format_number(d, settings.support_number))
    # The rule's flags; a customer's urgent follow-up stays flagged until answered.
    ticket.flags = [f for f in ticket.flags if f.flag in decision.flags or f.flag is Flag.URGENT]
    have = {f.flag for f in ticket.flags}
    ticket.flags += [TicketFlag(flag=f) for f in sorted(decision.flags - have)]
    for flag in ticket.flags:
        flag.detail = details.get(flag.flag)
    if contract is not None:
        ticket.product = deadlines.product_for(contract).name or None
    if ticket.first_responded_at is not None:
        return  # answered already: the clock it was answered against stays as it was
    if decision.flags & OUT_OF_SCOPE:
        ticket.work_starts_at = ticket.first_response_due = None
        return
    start = now if now is not None and ticket.first_response_due is None else ticket.received_at
    deadline = deadlines.first_response(start, contract, product=ticket.product,
                                        kind=ticket.inquiry_kind or InquiryKind.GENERAL)
    ticket.work_starts_at, ticket.first_response_due = deadline.starts_at, deadline.due_at


def _record_decision(session: Session, ticket: Ticket, user: StaffUser | None, now: datetime,
                     before: tuple[str | None, list[str]], what: Line) -> None:
    """The triage decision in the ticket's history: what staff decided, and what changed."""
    conversation.refresh_due(ticket)
    number, flags = before
    line = what
    if ticket.support_number != number:
        line += say("。契約: %(before)s → %(after)s", before=number or N_("なし"),
                    after=ticket.support_number or N_("なし"))
    after = ticket.flag_names
    if after != flags:
        added = [f for f in after if f not in flags]
        removed = [f for f in flags if f not in after]
        line += say("。フラグ%(changes)s", changes="".join(f" +{f}" for f in added)
                    + "".join(f" -{f}" for f in removed))
    record(session, ticket.id, user or COMMAND_LINE, line, at=now, kind="triage",
           detail={"support_number": ticket.support_number, "flags": after})


def _contract(session: Session, number: SupportNumber) -> Contract | None:
    return session.scalar(select(Contract).where(Contract.support_number == number.digits))


def _fax_text(session: Session, ticket: Ticket) -> str:
    """What the ticket's FAX pages say (their OCR text), for the contact they name."""
    return "\n".join(session.scalars(
        select(Message.text).where(Message.ticket_id == ticket.id,
                                   Message.direction == Direction.IN,
                                   Message.channel == Channel.FAX)
        .order_by(Message.received_at, Message.id)
    ))


def assign_fax_number(session: Session, ticket: Ticket, number: SupportNumber,
                      user: StaffUser | None, settings: Settings, deadlines: Deadlines,
                      now: datetime) -> Ticket:
    """Give a FAX the number staff read on its page, as if the reader had read it.

    As the pipeline does: the contract of the number, the registered contact
    the page names (name, phone, FAX number or address in its text), and the
    flags the rule sets; a page that names no registered contact is flagged
    ``unregistered_sender``, a number of no contract ``unknown_support_number``.
    """
    ensure_workable(ticket)
    contract = _contract(session, number)
    contacts: tuple[ContactFacts, ...] = ()
    if contract is not None:
        named = match_fax_contact(_fax_text(session, ticket),
                                  store.contact_cards(session, contract.customer_id))
        contacts = store.contacts_by_ids(session, [named] if named else [])
    decision = decide_entitlement(
        support_number=number.digits,
        contract_for_number=store.contract_facts(contract) if contract else None,
        sender_contacts=contacts,
        received_day=ticket.received_at.astimezone(settings.tz).date(),
    )
    # Staff read it off the page: it is what the customer wrote.
    before = (ticket.support_number, ticket.flag_names)
    ticket.support_number_written = number.digits
    apply_entitlement(ticket, decision, contract, settings, deadlines)
    _record_decision(session, ticket, user, now, before,
                     say("トリアージ: FAXの番号を %(number)s と確認", number=number.display))
    record_note(session, ticket, user,
                f"FAXのサポートサービス番号を {number.display} と確認しました", now)
    session.flush()
    return ticket


def _first_sender(session: Session, ticket: Ticket) -> Message | None:
    return session.scalar(
        select(Message).where(Message.ticket_id == ticket.id, Message.direction == Direction.IN,
                              Message.sender != "").order_by(Message.received_at, Message.id)
    )


def accept_as_customer(session: Session, ticket: Ticket, number: SupportNumber,
                       register_sender: bool, user: StaffUser | None, settings: Settings,
                       deadlines: Deadlines, now: datetime, *,
                       contact_name: str = "") -> Contract:
    """Staff decide a flagged inquiry is the customer's of ``number`` and take it on.

    The ticket gets the contract (its customer, its terms, the sender's
    contact if they are one of it), as the rule decides for the sender's
    registered contacts; the review flags are cleared. A ticket that was out
    of scope (no due time) is due as an inquiry received now. With
    ``register_sender`` the sender's address becomes a registered contact of
    that contract, so their next mail is not flagged, named ``contact_name``
    (as staff typed it), else the display name of the mail's From; a sender
    with neither is refused, never named by their address.
    """
    ensure_workable(ticket)
    contract = _contract(session, number)
    if contract is None:
        raise ActionError(N_("サポートサービス番号 %(number)s の契約は登録されていません"),
                          number=number.display)
    sender = _first_sender(session, ticket)
    if register_sender and (sender is None or not valid_email(sender.sender)):
        raise ActionError(N_("送信者のメールアドレスがないため、窓口担当者に登録できません"))
    name = " ".join(contact_name.split())[:200] or (
        sender.sender_name.strip() if sender is not None else "")
    if register_sender and (not name or (sender is not None and name.lower() == sender.sender)):
        raise ActionError(N_("差出人に名前がありません。窓口担当者の氏名を入力してください"))
    decision = decide_entitlement(
        support_number=number.digits,
        contract_for_number=store.contract_facts(contract),
        sender_contacts=store.contacts_for_address(session, sender.sender if sender else ""),
        received_day=ticket.received_at.astimezone(settings.tz).date(),
    )
    before = (ticket.support_number, ticket.flag_names)
    apply_entitlement(ticket, accepted_by_staff(decision), contract, settings, deadlines, now)
    note = f"{contract.customer.company}（{number.display}）のお問い合わせとして受け付けました"
    _record_decision(session, ticket, user, now, before, say(
        "トリアージ: %(company)s（%(number)s）のお問い合わせとして受け付けました",
        company=contract.customer.company, number=number.display))
    if register_sender and sender is not None:
        contact = register_contact(session, contract, sender.sender, name)
        ticket.contact_id = contact.id
        note += f"。送信者 {contact.emails[-1].email} を窓口担当者に登録しました"
        record(session, ticket.id, user or COMMAND_LINE,
               say("窓口担当者を登録: %(name)s（%(email)s）", name=contact.name,
                   email=contact.emails[-1].email),
               at=now, kind="contact", detail={"contact_id": contact.id})
    record_note(session, ticket, user, note, now)
    return contract


def mark_out_of_scope(session: Session, ticket: Ticket, reason: str, user: StaffUser | None,
                      now: datetime) -> None:
    """Not a support request we serve; closed with the reason, flags kept."""
    ensure_workable(ticket)
    reason = required_text(reason, N_("理由"), MAX_REASON)
    record_note(session, ticket, user, f"対象外として完了しました。理由: {reason}", now)
    conversation.move(session, ticket, Event.STAFF_CHOSE, user or COMMAND_LINE, now,
                      chosen=State.CLOSED, why=say("トリアージ: 対象外（%(reason)s）",
                                                   reason=reason[:100]))


# -- the queues --------------------------------------------------------------


@dataclass(frozen=True)
class SenderSuggestion:
    """Who the sending machine's FAX number says sent it: a suggestion for staff."""

    fax: str  # the number as read (digits)
    source: str  # "header" (the page's header line), "tsi", "caller_id" (a gateway's)
    companies: tuple[str, ...]  # customers with a contact of that FAX number
    contacts: tuple[str, ...]  # their names
    support_numbers: tuple[str, ...]  # those customers' contracts


@dataclass
class FaxTriageItem:
    ticket: Ticket
    message: Message | None  # the FAX itself
    pages: list[Attachment]  # its page images (PNG)
    sender: SenderSuggestion | None = None  # the registered contact the FAX number names


def sender_suggestion(session: Session, message: Message | None) -> SenderSuggestion | None:
    """What the FAX's sender number (recorded by the pipeline) says about who sent it."""
    record = (message.fax_reading or {}) if message is not None else {}
    found = record.get("sender_fax")
    if not isinstance(found, dict) or not found.get("digits"):
        return None
    ids = [int(i) for i in found.get("contacts") or []]
    contacts = session.scalars(
        select(Contact).where(Contact.id.in_(ids)).options(selectinload(Contact.customer),
                                                          selectinload(Contact.contracts))
    ).all() if ids else []
    return SenderSuggestion(
        fax=str(found["digits"]),
        source=str(found.get("source", "")),
        companies=tuple(sorted({c.customer.company for c in contacts})),
        contacts=tuple(c.name for c in contacts),
        support_numbers=tuple(sorted({k.support_number for c in contacts for k in c.contracts})),
    )


def fax_triage(session: Session, limit: int | None = 50) -> list[FaxTriageItem]:
    """Open FAX tickets whose support number could not be read, oldest first."""
    tickets = session.scalars(
        select(Ticket)
        .where(*FAX_TRIAGE)
        .options(selectinload(Ticket.messages).selectinload(Message.attachments),
                 selectinload(Ticket.flags))
        .order_by(Ticket.received_at, Ticket.id)
        .limit(limit)
    ).all()
    items = []
    for t in tickets:
        fax = next((m for m in t.messages if m.channel == Channel.FAX), None)
        pages = [a for m in t.messages for a in m.attachments if a.content_type == "image/png"]
        items.append(FaxTriageItem(t, fax, pages, sender_suggestion(session, fax)))
    return items


def mail_triage(session: Session, limit: int = 50) -> list[Ticket]:
    """Open tickets flagged for staff to decide: stranger, expired contract, unknown number."""
    return list(session.scalars(
        select(Ticket)
        .where(*MAIL_TRIAGE)
        .options(selectinload(Ticket.messages), selectinload(Ticket.customer),
                 selectinload(Ticket.flags))
        .order_by(Ticket.received_at, Ticket.id)
        .limit(limit)
    ))


def triage_queue(session: Session) -> list[tuple[Ticket, list[str]]]:
    """The whole FAX triage queue, oldest first, with its page images (sha256)."""
    return [(item.ticket, [a.sha256 for a in item.pages])
            for item in fax_triage(session, limit=None)]
