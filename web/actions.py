"""What staff do to a ticket, a customer, a contract or a contact from the web desk.

Each function works in the caller's session and transaction and never
commits. A request that makes no sense (an unknown ticket number, a support
number whose check digit fails, a merge into itself) raises ``ActionError``
with the sentence staff read, in Japanese; nothing is written then.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from madoguchi.config import Settings
from madoguchi.ticketing import triage
from madoguchi.ticketing.calendar import BusinessCalendar
from madoguchi.ticketing.models import (
    Channel,
    Contact,
    ContactEmail,
    Contract,
    Customer,
    Direction,
    Flag,
    Message,
    StaffUser,
    Ticket,
    TicketStatus,
)
from madoguchi.ticketing.sla import FirstResponsePolicy, contract_policy, first_response_due
from madoguchi.ticketing.support_number import SupportNumber, parse_support_number

MAX_TEXT = 20_000
MAX_REASON = 1_000
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
# Flags that staff clear by accepting a message as the customer's.
_ACCEPTED_FLAGS = {Flag.UNREGISTERED_SENDER, Flag.CONTRACT_EXPIRED, Flag.UNKNOWN_SUPPORT_NUMBER}


class ActionError(Exception):
    """A request staff must correct; the message is shown to them as it is."""


def required_text(value: str, what: str, limit: int = MAX_TEXT) -> str:
    value = value.replace("\r\n", "\n").strip()
    if not value:
        raise ActionError(f"{what}を入力してください")
    if len(value) > limit:
        raise ActionError(f"{what}は{limit}文字以内にしてください")
    return value


def ensure_workable(ticket: Ticket) -> None:
    if ticket.merged_into_id is not None:
        raise ActionError("このチケットは統合済みです。統合先のチケットで対応してください")


def mark_first_response(ticket: Ticket, now: datetime) -> None:
    """A reply by mail or FAX, or a phone call, stops the first-response clock."""
    if ticket.first_responded_at is None:
        ticket.first_responded_at = now


def add_message(session: Session, ticket: Ticket, user: StaffUser, *, direction: Direction,
                channel: Channel, text: str, now: datetime, subject: str = "",
                recipients: list[str] | None = None) -> Message:
    message = Message(
        ticket_id=ticket.id,
        direction=direction,
        channel=channel,
        sender="",
        sender_name=user.name,
        recipients=recipients or [],
        cc=[],
        references=[],
        subject=subject or ticket.subject,
        date=now,
        received_at=now,
        text=text,
        author_id=user.id,
    )
    session.add(message)
    return message


def add_note(session: Session, ticket: Ticket, user: StaffUser, text: str,
             now: datetime) -> Message:
    """An internal note: staff only, never sent, does not count as a response."""
    ensure_workable(ticket)
    return add_message(session, ticket, user, direction=Direction.NOTE, channel=Channel.NOTE,
                       text=required_text(text, "メモ"), now=now)


def log_phone_call(session: Session, ticket: Ticket, user: StaffUser, text: str,
                   phone: str, now: datetime) -> Message:
    """A phone call with the customer, as staff summarise it; it is a response."""
    ensure_workable(ticket)
    phone = phone.strip()[:50]
    message = add_message(
        session, ticket, user, direction=Direction.OUT, channel=Channel.PHONE,
        text=required_text(text, "通話内容"), now=now, subject="電話対応",
        recipients=[phone] if phone else [],
    )
    mark_first_response(ticket, now)
    return message


def set_status(ticket: Ticket, status: str, now: datetime) -> None:
    ensure_workable(ticket)
    try:
        new = TicketStatus(status)
    except ValueError:
        raise ActionError("ステータスが正しくありません") from None
    if new == ticket.status:
        return
    ticket.status = new
    ticket.closed_at = now if new == TicketStatus.CLOSED else None


def assign(session: Session, ticket: Ticket, assignee: str) -> StaffUser | None:
    if not assignee:
        ticket.assignee_id = None
        return None
    user = session.get(StaffUser, int(assignee)) if assignee.isdigit() else None
    if user is None or not user.active:
        raise ActionError("担当者が見つかりません")
    ticket.assignee_id = user.id
    return user


def merge(session: Session, source: Ticket, target_number: str, user: StaffUser,
          now: datetime) -> Ticket:
    """Merge a mistaken ticket into the right one: its messages move, it is closed.

    The merged ticket keeps pointing at the other (``merged_into_id``), so its
    number still leads staff there; the right ticket is reopened when it was
    closed and the mistaken one was still being worked.
    """
    ensure_workable(source)
    number = target_number.strip().upper()
    target = session.scalar(select(Ticket).where(Ticket.number == number))
    if target is None:
        raise ActionError(f"チケット {number or '(空)'} が見つかりません")
    if target.id == source.id:
        raise ActionError("同じチケットには統合できません")
    if target.merged_into_id is not None:
        raise ActionError(f"{target.number} はすでに別のチケットに統合されています")
    session.execute(
        update(Message).where(Message.ticket_id == source.id).values(ticket_id=target.id)
        .execution_options(synchronize_session=False)
    )
    if source.status != TicketStatus.CLOSED and target.status == TicketStatus.CLOSED:
        target.status, target.closed_at = TicketStatus.OPEN, None
    if source.first_responded_at and target.first_responded_at is None:
        target.first_responded_at = source.first_responded_at
    source.status, source.closed_at, source.merged_into_id = TicketStatus.CLOSED, now, target.id
    add_message(session, target, user, direction=Direction.NOTE, channel=Channel.NOTE,
                text=f"{source.number} を統合しました（件名: {source.subject}）", now=now)
    add_message(session, source, user, direction=Direction.NOTE, channel=Channel.NOTE,
                text=f"{target.number} に統合しました", now=now)
    return target


def _number(written: str, settings: Settings) -> SupportNumber:
    number = parse_support_number(written, settings.support_number)
    if number is None:
        raise ActionError(
            f"サポートサービス番号「{written.strip()[:40]}」は正しくありません"
            "（桁数またはチェックディジットが合いません）"
        )
    return number


def assign_fax_number(session: Session, ticket: Ticket, written: str, user: StaffUser,
                      settings: Settings, now: datetime) -> Ticket:
    """Triage: the number staff read on the FAX page; checked by its check digit."""
    ensure_workable(ticket)
    number = _number(written, settings)
    try:
        ticket = triage.assign_support_number(session, ticket.number, number.digits, settings)
    except triage.TriageError as exc:
        raise ActionError(str(exc)) from exc
    add_message(session, ticket, user, direction=Direction.NOTE, channel=Channel.NOTE,
                text=f"FAXのサポートサービス番号を {number.display} と確認しました", now=now)
    return ticket


def _recompute_due(ticket: Ticket, contract: Contract, settings: Settings) -> None:
    if ticket.first_responded_at is not None:
        return
    policy = contract_policy(FirstResponsePolicy.from_settings(settings.sla),
                             contract.sla_override, contract=contract.support_number)
    calendar = BusinessCalendar.from_settings(settings.calendar, settings.tz)
    deadline = first_response_due(ticket.received_at, calendar, policy)
    ticket.work_starts_at, ticket.first_response_due = deadline.starts_at, deadline.due_at


def accept_as_customer(session: Session, ticket: Ticket, written: str, register_sender: bool,
                       user: StaffUser, settings: Settings, now: datetime) -> Contract:
    """Triage: staff decide a flagged message is the customer's and take it on.

    The ticket gets the contract (and its customer and terms); the review
    flags are cleared. With ``register_sender`` the sender's address becomes
    a registered contact of that contract, so their next mail is not flagged.
    """
    ensure_workable(ticket)
    number = _number(written, settings)
    contract = session.scalar(select(Contract).where(Contract.support_number == number.digits))
    if contract is None:
        raise ActionError(f"サポートサービス番号 {number.display} の契約は登録されていません")
    ticket.support_number = number.digits
    ticket.contract_id, ticket.customer_id = contract.id, contract.customer_id
    ticket.flags = [f for f in ticket.flags if f.flag not in _ACCEPTED_FLAGS]
    _recompute_due(ticket, contract, settings)
    note = f"{contract.customer.company}（{number.display}）のお問い合わせとして受け付けました"
    if register_sender:
        contact = _register_sender(session, ticket, contract)
        if contact is not None:
            ticket.contact_id = contact.id
            note += f"。送信者 {contact.emails[-1].email} を窓口担当者に登録しました"
    add_message(session, ticket, user, direction=Direction.NOTE, channel=Channel.NOTE,
                text=note, now=now)
    return contract


def _register_sender(session: Session, ticket: Ticket, contract: Contract) -> Contact | None:
    first = session.scalar(
        select(Message).where(Message.ticket_id == ticket.id, Message.direction == Direction.IN,
                              Message.sender != "").order_by(Message.received_at, Message.id)
    )
    if first is None or not _EMAIL.match(first.sender):
        raise ActionError("送信者のメールアドレスがないため、窓口担当者に登録できません")
    address = first.sender.lower()
    contact = session.scalar(
        select(Contact).join(ContactEmail)
        .where(Contact.customer_id == contract.customer_id, ContactEmail.email == address)
    )
    if contact is None:
        contact = Contact(customer_id=contract.customer_id,
                          name=(first.sender_name or address)[:200], phone="", fax="")
        contact.emails.append(ContactEmail(email=address))
        session.add(contact)
    if contract not in contact.contracts:
        contact.contracts.append(contract)
    session.flush()
    return contact


def mark_out_of_scope(session: Session, ticket: Ticket, reason: str, user: StaffUser,
                      now: datetime) -> None:
    """Triage: not a support request we serve; closed with the reason, flags kept."""
    ensure_workable(ticket)
    reason = required_text(reason, "理由", MAX_REASON)
    add_message(session, ticket, user, direction=Direction.NOTE, channel=Channel.NOTE,
                text=f"対象外として完了しました。理由: {reason}", now=now)
    ticket.status, ticket.closed_at = TicketStatus.CLOSED, now


# -- customers, contracts, contacts ------------------------------------------


def _field(value: str, what: str, limit: int, required: bool = False) -> str:
    value = " ".join(value.split()) if "\n" not in value else value.strip()
    if required and not value:
        raise ActionError(f"{what}を入力してください")
    if len(value) > limit:
        raise ActionError(f"{what}は{limit}文字以内にしてください")
    return value


def update_customer(session: Session, customer: Customer, *, company: str, department: str,
                    address: str) -> None:
    company = _field(company, "会社名", 200, required=True)
    clash = session.scalar(
        select(Customer.id).where(Customer.company == company, Customer.id != customer.id)
    )
    if clash is not None:
        raise ActionError(f"会社名「{company}」は別の顧客で使われています")
    customer.company = company
    customer.department = _field(department, "部署", 200)
    customer.address = _field(address, "住所", 400)


def _date(value: str, what: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ActionError(f"{what}は YYYY-MM-DD の形で入力してください") from None


def update_contract(contract: Contract, *, product: str, environment: str, period_start: str,
                    period_end: str) -> None:
    start, end = _date(period_start, "サポート開始日"), _date(period_end, "サポート終了日")
    if end < start:
        raise ActionError("サポート終了日は開始日より後にしてください")
    contract.product = _field(product, "製品", 200)
    contract.environment = _field(environment, "環境", 4000)
    contract.period_start, contract.period_end = start, end


def update_contact(session: Session, contact: Contact, *, name: str, phone: str, fax: str,
                   emails: str) -> None:
    addresses = list(dict.fromkeys(e.strip().lower() for e in emails.split() if e.strip()))
    bad = [a for a in addresses if not _EMAIL.match(a) or len(a) > 320]
    if bad:
        raise ActionError(f"メールアドレスが正しくありません: {', '.join(bad[:3])}")
    contact.name = _field(name, "氏名", 200, required=True)
    contact.phone = _field(phone, "電話番号", 50)
    contact.fax = _field(fax, "FAX番号", 50)
    keep = [e for e in contact.emails if e.email in addresses]
    have = {e.email for e in keep}
    contact.emails = keep + [ContactEmail(email=a) for a in addresses if a not in have]
    session.flush()
