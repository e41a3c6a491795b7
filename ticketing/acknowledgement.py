"""The acknowledgement (受付のお知らせ) that answers a new ticket's first mail.

Three parts, Mailman-style: ``should_acknowledge`` decides (a pure rule),
``build_acknowledgement`` writes the mail (pure but for the template file),
``acknowledge_new_ticket`` puts both in the ticket's transaction and queues
the mail in the outbox (``madoguchi.ticketing.outbox``).

Encoding: UTF-8, the body base64, the subject and names RFC 2047 B-encoded;
the message is 7-bit clean, so it passes any relay without 8BITMIME. Every
current client in Japan (Outlook, Thunderbird, Becky!, Gmail, iOS and
Android mail, the carriers' mail apps) shows it right. ISO-2022-JP is not
used: it cannot carry characters customers do write (①, ㈱, 髙, ～ maps
differently between vendors), and the customer's own subject is quoted back.

The body comes from a Jinja2 template the desk may edit (the shipped one is
``templates/acknowledgement.txt.j2``; ``[acknowledgement] template`` points
at another). Unknown variables are errors, not blanks: call
``check_template`` at start-up to find them before a customer would. Each
product may speak with its own voice (``products.AckVoice``: sender name and
address, subject label, templates).

A ticket out of scope (``vocabulary.OUT_OF_SCOPE``: the sender is not
registered for the contract, or the contract has no support period that day)
is never promised a deadline: it gets nothing (``out_of_scope = "none"``) or
a polite notice worded for its case (``"notice"``,
``templates/out_of_scope.txt.j2``), which promises no response time.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from functools import cache
from pathlib import Path
from typing import Protocol

import jinja2
from sqlalchemy import select
from sqlalchemy.orm import Session

from madoguchi.config import ConfigError, Settings
from madoguchi.ticketing.japanese import format_due_ja, format_moment_ja
from madoguchi.ticketing.mail_headers import one_line, thread_headers, usable_address
from madoguchi.ticketing.models import (
    Channel,
    Direction,
    Message,
    OutboxMessage,
    Ticket,
    TicketStatus,
)
from madoguchi.ticketing.outbox import enqueue
from madoguchi.ticketing.products import AckVoice, Products
from madoguchi.ticketing.ticket_number import TicketNumber
from madoguchi.ticketing.ticket_number import tag as subject_tag

__all__ = [
    "ACK_KIND",
    "SHIPPED_TEMPLATE",
    "acknowledge_new_ticket",
    "build_acknowledgement",
    "build_notice",
    "check_template",
    "format_due_ja",
    "format_moment_ja",
    "should_acknowledge",
]

log = logging.getLogger("madoguchi.acknowledgement")

ACK_KIND = "ack"
SHIPPED_TEMPLATE = Path(__file__).resolve().parent / "templates" / "acknowledgement.txt.j2"
SHIPPED_NOTICE = Path(__file__).resolve().parent / "templates" / "out_of_scope.txt.j2"
# The case a notice is worded for, the first that applies; its subject label.
NOTICE_CASES = (
    ("unregistered_sender", "お問い合わせについてのご案内"),
    ("contract_expired", "サポート期間についてのご案内"),
    ("contract_not_started", "サポート期間についてのご案内"),
)

_MAX_SUBJECT = 200


class AckTicket(Protocol):
    """What the acknowledgement reads of a ticket (a ``Ticket``, or one the pipeline opens)."""

    # Read-only: a ``Ticket`` (whose id is set) and the pipeline's rows both qualify.
    @property
    def id(self) -> int | None: ...
    @property
    def number(self) -> str: ...
    @property
    def work_starts_at(self) -> datetime | None: ...
    @property
    def first_response_due(self) -> datetime | None: ...
    @property
    def flag_names(self) -> list[str]: ...


class AckInbound(Protocol):
    """What it reads of the ticket's first message (a ``Message``, or the pipeline's row)."""

    @property
    def channel(self) -> Channel: ...
    @property
    def auto_kind(self) -> str | None: ...
    @property
    def sender(self) -> str: ...
    @property
    def sender_name(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def message_id(self) -> str | None: ...
    @property
    def references(self) -> Sequence[str]: ...
    @property
    def received_at(self) -> datetime: ...


def desk_voice(settings: Settings) -> AckVoice:
    """The voice of a desk without products: ``[acknowledgement]`` and ``desk_address``."""
    ack = settings.acknowledgement
    return AckVoice(ack.from_name, settings.desk_address, ack.subject_label, ack.template,
                    ack.out_of_scope, ack.notice_template)


def out_of_scope_case(ticket: AckTicket) -> str | None:
    """The out-of-scope flag a notice would be worded for; None when the ticket is in scope."""
    names = set(ticket.flag_names)
    return next((case for case, _label in NOTICE_CASES if case in names), None)


def should_acknowledge(
    ticket: AckTicket, inbound: AckInbound, settings: Settings, recent_acks_to_sender: int,
    voice: AckVoice | None = None,
) -> tuple[bool, str]:
    """Whether a new ticket's first mail gets an answer at all, and why (not).

    Which answer (the acknowledgement, or for a ticket out of scope a notice or
    nothing) is ``acknowledgement_due``'s.
    """
    ack = settings.acknowledgement
    if not ack.enabled:
        return False, "acknowledgements are disabled"
    if inbound.auto_kind:
        return False, f"machine-written mail ({inbound.auto_kind})"
    if inbound.channel != Channel.EMAIL:
        return False, f"arrived by {inbound.channel.value}; only email is acknowledged by mail"
    sender = inbound.sender.strip().lower()
    if not usable_address(sender):
        return False, f"no usable sender address ({one_line(inbound.sender, 80)!r})"
    own = {settings.desk_address.lower(), (voice or desk_voice(settings)).from_address.lower()}
    if sender in own:
        return False, "the sender is the desk's own address"
    skipped = [f for f in ticket.flag_names if f in ack.skip_flagged]
    if skipped:
        return False, f"ticket flagged {', '.join(skipped)}: staff decide first"
    if recent_acks_to_sender >= ack.max_per_sender_per_hour:
        return False, (
            f"{recent_acks_to_sender} acknowledgements to {sender} in the past hour "
            f"(limit {ack.max_per_sender_per_hour})"
        )
    return True, "new ticket from an email sender"


@cache
def _environment(directory: Path) -> jinja2.Environment:
    # auto_reload: the desk's edits show in the next mail without a restart.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # plain text, not HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=True,
    )


def _template(path: Path) -> jinja2.Template:
    path = path.resolve()
    return _environment(path.parent).get_template(path.name)


def _company(ticket: AckTicket) -> str:
    customer = getattr(ticket, "customer", None)  # a Ticket's; else the caller says
    return customer.company if customer is not None else ""


def build_acknowledgement(
    ticket: AckTicket,
    inbound: AckInbound,
    settings: Settings,
    *,
    due_at: datetime | None,
    now: datetime,
    company: str | None = None,
    voice: AckVoice | None = None,
) -> EmailMessage:
    """The acknowledgement of ``ticket``, answering its first mail ``inbound``.

    ``company`` is the customer's, by default ``ticket.customer.company``;
    ``voice`` the product's (default: the desk's ``[acknowledgement]``).
    Everything taken from the customer's mail (subject, name, address,
    message ids) is reduced to one line or checked before it reaches a header.
    Raises jinja2.TemplateError when the desk's template is broken.
    """
    voice = voice or desk_voice(settings)
    return _build(ticket, inbound, settings, due_at, now, voice.template or SHIPPED_TEMPLATE,
                  _company(ticket) if company is None else company, voice)


def build_notice(
    ticket: AckTicket, inbound: AckInbound, settings: Settings, *, case: str, now: datetime,
    company: str | None = None, voice: AckVoice | None = None,
) -> EmailMessage:
    """The notice answering an out-of-scope ticket's first mail, worded for ``case`` (a flag).

    It says the inquiry was received and why it cannot be answered as a
    support request yet; it promises no response time.
    """
    voice = voice or desk_voice(settings)
    label = dict(NOTICE_CASES)[case]
    return _build(ticket, inbound, settings, None, now, voice.notice_template or SHIPPED_NOTICE,
                  _company(ticket) if company is None else company,
                  replace(voice, subject_label=label), case=case)


def _build(
    ticket: AckTicket,
    inbound: AckInbound,
    settings: Settings,
    due_at: datetime | None,
    now: datetime,
    template: Path,
    company: str,
    voice: AckVoice,
    case: str = "",
) -> EmailMessage:
    tz = settings.tz
    tag = subject_tag(ticket.number)
    subject = one_line(inbound.subject, _MAX_SUBJECT)
    sender_name = one_line(inbound.sender_name, _MAX_SUBJECT)
    desk_domain = voice.from_address.rpartition("@")[2]
    work_starts = ticket.work_starts_at
    extra = {"case": case} if case else {}
    body = _template(template).render(
        **extra,
        company=company,
        sender_name=sender_name,
        ticket_number=ticket.number,
        tag=tag,
        subject=subject,
        received=format_moment_ja(inbound.received_at, tz),
        work_starts=format_moment_ja(work_starts, tz) if work_starts and work_starts > now else "",
        due=format_due_ja(due_at, tz) if due_at else "",
        desk_name=voice.from_name,
        desk_address=voice.from_address,
    )

    # The SMTP policy: CRLF also inside the base64 body, as RFC 2046 wants text.
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = Address(display_name=voice.from_name, addr_spec=voice.from_address)
    msg["To"] = Address(display_name=sender_name, addr_spec=inbound.sender.strip())
    msg["Subject"] = f"{tag} {voice.subject_label}: {subject}" if subject else (
        f"{tag} {voice.subject_label}"
    )
    msg["Date"] = format_datetime(now.astimezone(tz))
    # Short enough not to be folded (some clients then lose the thread).
    msg["Message-ID"] = f"<{ticket.number}.ack.{secrets.token_hex(6)}@{desk_domain}>"
    thread_headers(msg, inbound.message_id, inbound.references)
    # RFC 3834, and what Exchange and the big mail systems honour: do not
    # answer this mail automatically.
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["Precedence"] = "auto_reply"
    msg["X-Loop"] = voice.from_address
    msg.set_content(body, charset="utf-8", cte="base64")
    return msg


def recent_ack_counts(session: Session, now: datetime) -> Counter[str]:
    """Acknowledgements queued in the last hour, per (lower-cased) recipient."""
    counts: Counter[str] = Counter()
    for rcpt_to in session.scalars(
        select(OutboxMessage.rcpt_to).where(
            OutboxMessage.kind == ACK_KIND,
            OutboxMessage.created_at > now - timedelta(hours=1),
        )
    ):
        counts.update({a.lower() for a in rcpt_to})
    return counts


def acknowledge_new_ticket(
    session: Session,
    ticket: AckTicket,
    inbound: AckInbound,
    settings: Settings,
    *,
    now: datetime,
    recent_acks: int | None = None,
    company: str | None = None,
    voice: AckVoice | None = None,
) -> OutboxMessage | None:
    """Queue the acknowledgement of a new ticket in the caller's transaction, if one is due.

    Returns the outbox row, or None when the rules say no or the ticket was
    acknowledged already (``ack:<number>`` is queued at most once).
    ``recent_acks`` (acknowledgements to this sender in the last hour) may be
    given by a caller that counts for a whole batch; else it is queried.
    ``company`` as for ``build_acknowledgement``. The ticket must have its id.
    """
    recent = (
        recent_acks
        if recent_acks is not None
        else recent_ack_counts(session, now)[inbound.sender.strip().lower()]
    )
    message = acknowledgement_due(ticket, inbound, settings, now=now, recent_acks=recent,
                                  company=company, voice=voice)
    if message is None:
        return None
    return enqueue(
        session,
        kind=ACK_KIND,
        dedupe_key=ack_key(ticket),
        ticket=ticket,  # type: ignore[arg-type]  # only its id is read
        message=message,
        now=now,
    )


def ack_key(ticket: AckTicket) -> str:
    """The outbox dedupe key of a ticket's acknowledgement: queued once, ever."""
    return f"{ACK_KIND}:{ticket.number}"


def acknowledgement_due(
    ticket: AckTicket,
    inbound: AckInbound,
    settings: Settings,
    *,
    now: datetime,
    recent_acks: int,
    company: str | None = None,
    voice: AckVoice | None = None,
) -> EmailMessage | None:
    """The mail to queue for a new ticket, or None when the rules say no.

    The acknowledgement with its due time; for a ticket out of scope, the
    notice for its case when the voice says ``out_of_scope = "notice"``, else
    nothing. For callers that queue many at once (``outbox.outbox_values``
    and ``outbox.insert_outbox``); ``acknowledge_new_ticket`` queues one.
    """
    ok, reason = should_acknowledge(ticket, inbound, settings, recent_acks, voice)
    if not ok:
        log.info("%s: no acknowledgement: %s", ticket.number, reason)
        return None
    voice = voice or desk_voice(settings)
    company = _company(ticket) if company is None else company
    case = out_of_scope_case(ticket)
    if case is not None:
        if voice.out_of_scope != "notice":
            log.info("%s: no acknowledgement: out of scope (%s)", ticket.number, case)
            return None
        return build_notice(ticket, inbound, settings, case=case, now=now, company=company,
                            voice=voice)
    try:
        return build_acknowledgement(ticket, inbound, settings, due_at=ticket.first_response_due,
                                     now=now, company=company, voice=voice)
    except jinja2.TemplateError:
        if voice.template is None:
            raise
        # The desk's template broke after start-up (it is re-read when it
        # changes): the customer still hears from us, and the ticket is kept.
        log.exception("%s: acknowledgement template %s is broken; using the shipped one",
                      ticket.number, voice.template)
        return _build(ticket, inbound, settings, ticket.first_response_due, now,
                      SHIPPED_TEMPLATE, company, voice)


def check_template(settings: Settings, *, now: datetime | None = None) -> None:
    """Render every configured template once with sample data; ConfigError if one cannot.

    The desk's acknowledgement and out-of-scope notice (each case), and each
    product's.
    """
    now = now or datetime.now(settings.tz)
    ticket = Ticket(
        number=str(TicketNumber(settings.threading.ticket_prefix, now.year, 1)),
        status=TicketStatus.OPEN,
        channel=Channel.EMAIL,
        subject="テスト",
        received_at=now,
        work_starts_at=now + timedelta(hours=10),
    )
    inbound = Message(
        direction=Direction.IN,
        channel=Channel.EMAIL,
        message_id="sample@example.jp",
        references=[],
        sender="sample@example.jp",
        sender_name="見本 太郎",
        subject="テスト",
        received_at=now,
    )
    voices = [("acknowledgement", desk_voice(settings))]
    voices += [(f"products.{p.name}.acknowledgement", p.voice)
               for p in Products.from_settings(settings).all if p.voice is not None]
    for key, voice in voices:
        try:
            build_acknowledgement(ticket, inbound, settings, due_at=now + timedelta(days=1),
                                  now=now, voice=voice)
        except jinja2.TemplateError as exc:
            path = voice.template or SHIPPED_TEMPLATE
            raise ConfigError(f"{key}.template: {path}: {exc}") from exc
        for case, _label in NOTICE_CASES:
            try:
                build_notice(ticket, inbound, settings, case=case, now=now, voice=voice)
            except jinja2.TemplateError as exc:
                path = voice.notice_template or SHIPPED_NOTICE
                raise ConfigError(f"{key}.notice_template: {path}: {exc}") from exc
