"""Replies that survive: saved as drafts while typed, and sent once per draft.

A draft belongs to one agent and one ticket; the reply form carries its token
(``idempotency_key``), and the page restores the agent's open draft after a
reload or a new sign-in. Sending a draft twice sends it once: the second time
answers with the reply it became. Pressing Back after sending shows the old
page again, and the browser may put the old text into a form with a fresh
token; the same text sent again by the same agent on the same ticket within
``RESEND_WINDOW`` is taken for that and answered the same way.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from madoguchi.config import Settings
from madoguchi.ticketing.actions import MAX_TEXT, ActionError
from madoguchi.ticketing.deadlines import Deadlines
from madoguchi.ticketing.draft_models import ReplyDraft
from madoguchi.ticketing.models import Direction, Message, OutboxMessage, StaffUser, Ticket
from madoguchi.ticketing.replies import REPLY_KIND, MailReply, send_mail_reply
from madoguchi.ticketing.rules.marks import N_

_TOKEN = re.compile(r"^[0-9a-f]{32}$")
RESEND_WINDOW = timedelta(minutes=30)
_MAX_ADDRESSES = 4000


class DraftSent(ActionError):
    """The draft was sent already; ``message_id`` is the reply it became."""

    def __init__(self, message_id: int | None) -> None:
        super().__init__(N_("この下書きは送信済みです"))
        self.message_id = message_id


def new_token() -> str:
    return secrets.token_hex(16)


def open_draft(session: Session, ticket_id: int, staff_id: int) -> ReplyDraft | None:
    """The agent's unsent draft of a reply to the ticket, the newest if several."""
    return session.scalar(
        select(ReplyDraft)
        .where(ReplyDraft.ticket_id == ticket_id, ReplyDraft.staff_id == staff_id,
               ReplyDraft.sent_at.is_(None))
        .order_by(ReplyDraft.updated_at.desc(), ReplyDraft.id.desc()).limit(1)
    )


def _checked_token(token: str) -> str:
    if not _TOKEN.match(token):
        raise ActionError(N_("フォームが古くなっています。ページを開き直してください"))
    return token


def _by_token(session: Session, token: str) -> ReplyDraft | None:
    return session.scalar(select(ReplyDraft).where(ReplyDraft.token == token)
                          .with_for_update())


@dataclass(frozen=True)
class DraftText:
    to: str
    cc: str
    body: str


def save_draft(session: Session, ticket: Ticket, user: StaffUser, token: str,
               text: DraftText, now: datetime) -> ReplyDraft:
    """Keep what the agent typed; DraftSent when that draft went out already."""
    _checked_token(token)
    if len(text.body) > MAX_TEXT or len(text.to) + len(text.cc) > _MAX_ADDRESSES:
        raise ActionError(N_("本文は%(n)s文字までです"), n=MAX_TEXT)
    draft = _by_token(session, token) or _created(session, ticket, user, token, now)
    if draft.ticket_id != ticket.id or draft.staff_id != user.id:
        raise ActionError(N_("この下書きは別のチケットまたは担当者のものです"))
    if draft.sent_at is not None:
        raise DraftSent(draft.sent_message_id)
    draft.to, draft.cc, draft.body = text.to, text.cc, text.body
    draft.updated_at = now
    session.flush()
    return draft


def _created(session: Session, ticket: Ticket, user: StaffUser, token: str,
             now: datetime) -> ReplyDraft:
    """The token's draft, made now, or the one a concurrent save of the same form (the
    page's autosave and the agent's own save, say) made first."""
    try:
        with session.begin_nested():
            draft = ReplyDraft(ticket_id=ticket.id, staff_id=user.id, token=token,
                               updated_at=now)
            session.add(draft)
            session.flush()
        return draft
    except IntegrityError:
        other = _by_token(session, token)
        if other is None:
            raise
        return other


def already_sent(session: Session, ticket: Ticket, user: StaffUser, token: str, body: str,
                 now: datetime) -> Message | None:
    """The reply this form already became: its draft was sent, or the same text was
    sent by the same agent on this ticket a moment ago, nothing from the customer since
    (Back, then send again)."""
    draft = _by_token(session, token)
    if draft is not None and draft.sent_at is not None:
        return session.get(Message, draft.sent_message_id) if draft.sent_message_id else None
    recent = session.scalars(
        select(ReplyDraft)
        .where(ReplyDraft.ticket_id == ticket.id, ReplyDraft.staff_id == user.id,
               ReplyDraft.sent_at >= now - RESEND_WINDOW)
        .order_by(ReplyDraft.sent_at.desc()).limit(5)
    )
    wanted = _same_text(body)
    for sent in recent:
        if (sent.sent_message_id is not None and _same_text(sent.body) == wanted
                and not _customer_wrote_since(session, ticket, sent.sent_message_id)):
            return session.get(Message, sent.sent_message_id)
    return None


def _customer_wrote_since(session: Session, ticket: Ticket, message_id: int) -> bool:
    # The same words again after the customer wrote back are a new answer, not a resend.
    return session.scalar(select(Message.id).where(
        Message.ticket_id == ticket.id, Message.direction == Direction.IN,
        Message.id > message_id).limit(1)) is not None


def _same_text(body: str) -> str:
    return " ".join(body.split())


@dataclass(frozen=True)
class SentReply:
    message: Message
    new: bool  # False: sent before, this is the reply it became


def send_reply(session: Session, ticket: Ticket, original: Message | None, user: StaffUser,
               reply: MailReply, settings: Settings, deadlines: Deadlines,
               now: datetime) -> SentReply:
    """Send the draft ``reply.idempotency_key`` once: queue it, record it, close the draft."""
    token = _checked_token(reply.idempotency_key)
    previous = already_sent(session, ticket, user, token, reply.body, now)
    if previous is not None:
        return SentReply(previous, new=False)
    message = send_mail_reply(session, ticket, original, user, reply, settings, deadlines, now)
    if message is None:  # the outbox has this form's reply (sent before drafts were kept)
        found = _queued_reply(session, ticket, token)
        if found is None:
            raise ActionError(N_("この返信は送信済みです（二重送信は行いません）"))
        return SentReply(found, new=False)
    session.flush()
    draft = _by_token(session, token)
    if draft is None:
        draft = ReplyDraft(ticket_id=ticket.id, staff_id=user.id, token=token)
        session.add(draft)
    draft.to, draft.cc, draft.body = reply.to, reply.cc, reply.body
    draft.updated_at = draft.sent_at = now
    draft.sent_message_id = message.id
    # Older open drafts of this agent on this ticket are the same reply, typed before.
    for old in session.scalars(select(ReplyDraft).where(
            ReplyDraft.ticket_id == ticket.id, ReplyDraft.staff_id == user.id,
            ReplyDraft.sent_at.is_(None), ReplyDraft.id != draft.id)):
        session.delete(old)
    session.flush()
    return SentReply(message, new=True)


def _queued_reply(session: Session, ticket: Ticket, token: str) -> Message | None:
    message_id = session.scalar(select(OutboxMessage.message_id).where(
        OutboxMessage.dedupe_key == f"{REPLY_KIND}:{ticket.number}:{token}"))
    if message_id is None:
        return None
    return session.scalar(select(Message).where(Message.ticket_id == ticket.id,
                                                Message.message_id == message_id.strip("<>")))
