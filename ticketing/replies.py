"""Staff replies to the customer: by mail through the outbox, or by FAX through a folder.

A mail reply comes from the desk address, carries the ticket tag in its
subject and In-Reply-To/References built from the message it answers, quotes
that message, and is written to the outbox and recorded as an outbound
message of the thread in the same transaction: a rolled-back reply sends
nothing, a committed one is always sent (``madoguchi.ticketing.outbox``).

A FAX reply is a PDF (A4, Japanese) written to the FAX gateway's outbound
folder with a JSON file beside it that names the destination number; the
JSON is in place before the PDF appears under its final name, so a gateway
that takes ``*.pdf`` always finds both. The PDF is also kept in the blob
store and attached to the outbound message, so staff see what was sent.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, getaddresses
from pathlib import Path
from zoneinfo import ZoneInfo

from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from sqlalchemy.orm import Session

from madoguchi.config import Settings
from madoguchi.ticketing.actions import (
    ActionError,
    ensure_workable,
    required_text,
    responded,
)
from madoguchi.ticketing.blobstore import BlobStore
from madoguchi.ticketing.deadlines import Deadlines
from madoguchi.ticketing.japanese import format_moment_ja
from madoguchi.ticketing.mail_headers import one_line, thread_headers, usable_address
from madoguchi.ticketing.models import (
    Attachment,
    Channel,
    Direction,
    Message,
    StaffUser,
    Ticket,
)
from madoguchi.ticketing.outbox import enqueue
from madoguchi.ticketing.pdf import JAPANESE_FONT, PAGE_H_MM, PAGE_W_MM, register_fonts
from madoguchi.ticketing.products import Products
from madoguchi.ticketing.rules.marks import N_
from madoguchi.ticketing.signatures import check_shown, signature_for
from madoguchi.ticketing.text_modules import apply_macro
from madoguchi.ticketing.ticket_number import tag as subject_tag

REPLY_KIND = "reply"
MAX_RECIPIENTS = 10
_SUBJECT_PREFIX = re.compile(r"^\s*(?:(?:re|fw|fwd|aw|返信|転送)\s*(?:\[\d+\])?\s*[:：]\s*)+",
                             re.IGNORECASE)
_IDEMPOTENCY = re.compile(r"^[0-9a-f]{32}$")
_FAX_NUMBER = re.compile(r"^\+?[0-9()\- ]{6,30}$")


def reply_subject(ticket: Ticket, subject: str) -> str:
    """"Re: [T-2026-000123] original subject", without stacked Re: or a second tag."""
    tag = subject_tag(ticket.number)
    bare = _SUBJECT_PREFIX.sub("", one_line(subject, 200)).replace(tag, " ")
    bare = _SUBJECT_PREFIX.sub("", " ".join(bare.split()))
    return f"Re: {tag} {bare}".rstrip()


def quote(original: Message, tz: ZoneInfo) -> str:
    name = one_line(original.sender_name or original.sender, 100)
    when = original.date or original.received_at
    header = f"{when.astimezone(tz).year}年{format_moment_ja(when, tz)} {name} 様:"
    lines = original.text.rstrip().splitlines() or [""]
    return header + "\n" + "\n".join(f"> {line}" if line else ">" for line in lines)


def sender(settings: Settings, product: str | None) -> tuple[str, str]:
    """(name, address) a reply on a ticket of ``product`` comes from: the product's
    acknowledgement voice when it has one (its own mailbox), else the desk's."""
    voice = Products.from_settings(settings).get(product).voice
    if voice is None:
        return settings.acknowledgement.from_name, settings.desk_address
    return voice.from_name, voice.from_address


def parse_recipients(value: str, what: str) -> list[Address]:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ActionError(N_("%(what)sに改行などの制御文字は使えません"), what=what)
    found = [(n, a) for n, a in getaddresses([value]) if a]
    if len(found) > MAX_RECIPIENTS:
        raise ActionError(N_("%(what)sは%(n)s件までです"), what=what, n=MAX_RECIPIENTS)
    bad = [a for _n, a in found if not usable_address(a)]
    if bad:
        raise ActionError(N_("%(what)sのメールアドレスが正しくありません: %(addresses)s"),
                          what=what, addresses=', '.join(bad[:3]))
    return [Address(display_name=one_line(n, 100), addr_spec=a) for n, a in found]


def default_reply_target(ticket: Ticket) -> Message | None:
    """The newest inbound mail of the thread written by a person (not a machine)."""
    mails = [m for m in ticket.messages
             if m.direction == Direction.IN and m.channel == Channel.EMAIL and not m.auto_kind]
    return mails[-1] if mails else None


@dataclass(frozen=True)
class MailReply:
    to: str
    cc: str
    body: str
    include_quote: bool
    idempotency_key: str
    # The signature the reply box showed (None: not from a form; the current one).
    signature: str | None = None
    # The text module whose macro applies once the reply is sent.
    macro: int | None = None


def build_reply(ticket: Ticket, original: Message | None, settings: Settings, user: StaffUser,
                *, to: list[Address], cc: list[Address], body: str, include_quote: bool,
                now: datetime, signature: str) -> EmailMessage:
    """The mail: the body, then ``signature`` as staff saw it (``ticketing.signatures``),
    from the product's address (``sender``)."""
    from_name, from_address = sender(settings, ticket.product)
    domain = from_address.rpartition("@")[2]
    text = body.rstrip() + "\n\n" + signature + "\n"
    if include_quote and original is not None:
        text += "\n" + quote(original, settings.tz) + "\n"
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = Address(display_name=from_name, addr_spec=from_address)
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = reply_subject(ticket, original.subject if original else ticket.subject)
    msg["Date"] = format_datetime(now.astimezone(settings.tz))
    msg["Message-ID"] = f"<{ticket.number}.reply.{secrets.token_hex(8)}@{domain}>"
    if original is not None:
        thread_headers(msg, original.message_id, original.references)
    msg.set_content(text, charset="utf-8", cte="base64")
    return msg


def send_mail_reply(session: Session, ticket: Ticket, original: Message | None,
                    user: StaffUser, reply: MailReply, settings: Settings,
                    deadlines: Deadlines, now: datetime) -> Message | None:
    """Queue the reply and record it in the thread; None if this form was sent already.

    The signature is the product's (``ticketing.signatures``); a reply whose form
    showed another is refused. A macro chosen with the reply is applied with it.
    """
    ensure_workable(ticket)
    sign = signature_for(session, ticket, user, settings, deadlines)
    check_shown(reply.signature, sign)
    if not _IDEMPOTENCY.match(reply.idempotency_key):
        raise ActionError(N_("フォームが古くなっています。ページを開き直してください"))
    to = parse_recipients(reply.to, N_("宛先"))
    if not to:
        raise ActionError(N_("宛先を入力してください"))
    cc = parse_recipients(reply.cc, "CC")
    body = required_text(reply.body, N_("本文"))
    mail = build_reply(ticket, original, settings, user, to=to, cc=cc, body=body,
                       include_quote=reply.include_quote, now=now, signature=sign)
    queued = enqueue(session, kind=REPLY_KIND,
                     dedupe_key=f"{REPLY_KIND}:{ticket.number}:{reply.idempotency_key}",
                     ticket=ticket, message=mail, now=now)
    if queued is None:
        return None  # a second submission of the same form: sent once
    message = Message(
        ticket_id=ticket.id,
        direction=Direction.OUT,
        channel=Channel.EMAIL,
        message_id=str(mail["Message-ID"]).strip("<>"),
        in_reply_to=str(mail["In-Reply-To"]).strip("<>") if mail["In-Reply-To"] else None,
        references=[r.strip("<>") for r in str(mail.get("References", "")).split()],
        sender=settings.desk_address,
        sender_name=settings.acknowledgement.from_name,
        recipients=[a.addr_spec for a in to],
        cc=[a.addr_spec for a in cc],
        subject=str(mail["Subject"]),
        date=now,
        received_at=now,
        text=mail.get_content(),
        author_id=user.id,
    )
    session.add(message)
    responded(session, ticket, user, now)
    apply_macro(session, ticket, reply.macro, user, now)
    return message


# -- FAX ---------------------------------------------------------------------

_MM: float = mm  # points per millimetre (reportlab ships no types)
_MARGIN = 20 * _MM
_PAGE_W, _PAGE_H = PAGE_W_MM * _MM, PAGE_H_MM * _MM


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Lines no wider than ``width``; Japanese breaks anywhere, so break by character."""
    out: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for ch in paragraph:
            if stringWidth(line + ch, font, size) > width:
                out.append(line)
                line = ch
            else:
                line += ch
        out.append(line)
    return out


def fax_pdf(ticket: Ticket, settings: Settings, user: StaffUser, *, to_name: str,
            fax_number: str, body: str, now: datetime) -> bytes:
    """The reply as an A4 FAX page (or pages): header block, then the text."""
    register_fonts()
    font = JAPANESE_FONT
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(_PAGE_W, _PAGE_H))
    c.setTitle(f"{ticket.number} FAX回答")
    header = [
        (f"{to_name} 御中" if to_name else "お客様", 14),
        (f"FAX: {fax_number}", 11),
        ("", 8),
        (f"送信元: {settings.acknowledgement.from_name}（{settings.desk_address}）", 10),
        (f"担当: {user.name}", 10),
        (f"送信日: {now.astimezone(settings.tz).year}年{format_moment_ja(now, settings.tz)}", 10),
        (f"問合せ番号: {ticket.number}", 12),
        (f"件名: {one_line(ticket.subject, 60)}", 10),
    ]
    lines = _wrap(body, font, 11, _PAGE_W - 2 * _MARGIN)
    footer = "ご返信の際は、問合せ番号を用紙の上部にご記入ください。"
    page = 1

    def start_page() -> float:
        c.setFont(font, 18)
        c.drawString(_MARGIN, _PAGE_H - _MARGIN, "FAX送信票（ご回答）")
        c.setFont(font, 9)
        c.drawRightString(_PAGE_W - _MARGIN, _PAGE_H - _MARGIN, f"{ticket.number}  p.{page}")
        c.drawString(_MARGIN, _MARGIN - 8 * _MM, footer)
        return _PAGE_H - _MARGIN - 12 * _MM

    y = start_page()
    for text, size in header:
        c.setFont(font, size)
        c.drawString(_MARGIN, y, text)
        y -= size * 1.6
    c.line(_MARGIN, y, _PAGE_W - _MARGIN, y)
    y -= 8 * _MM
    c.setFont(font, 11)
    for line in lines:
        if y < _MARGIN:
            c.showPage()
            page += 1
            y = start_page()
            c.setFont(font, 11)
        c.drawString(_MARGIN, y, line)
        y -= 11 * 1.7
    c.showPage()
    c.save()
    return buf.getvalue()


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.part")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class FaxReply:
    fax_number: str
    to_name: str
    body: str


def send_fax_reply(session: Session, ticket: Ticket, user: StaffUser, reply: FaxReply,
                   settings: Settings, outbound_dir: Path, blobs: BlobStore,
                   now: datetime) -> tuple[Message, list[Path]]:
    """Write the reply FAX into the gateway's ``outbound_dir`` and record it; returns the
    files written.

    The caller commits, and removes the files if the commit fails.
    """
    ensure_workable(ticket)
    number = " ".join(reply.fax_number.split())
    if not _FAX_NUMBER.match(number) or sum(ch.isdigit() for ch in number) < 6:
        raise ActionError(N_("FAX番号が正しくありません（数字とハイフンで入力してください）"))
    body = required_text(reply.body, N_("本文"))
    to_name = one_line(reply.to_name, 100)
    pdf = fax_pdf(ticket, settings, user, to_name=to_name, fax_number=number, body=body,
                  now=now)
    stamp = now.astimezone(settings.tz).strftime("%Y%m%d-%H%M%S")
    name = f"{ticket.number}-{stamp}-{secrets.token_hex(3)}"
    folder = Path(outbound_dir)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"to": number, "to_name": to_name, "ticket": ticket.number,
            "document": f"{name}.pdf", "created_at": now.isoformat()}
    written = [folder / f"{name}.json", folder / f"{name}.pdf"]
    _write_atomically(written[0], json.dumps(meta, ensure_ascii=False).encode())
    _write_atomically(written[1], pdf)
    sha = blobs.put(pdf)
    message = Message(
        ticket_id=ticket.id,
        direction=Direction.OUT,
        channel=Channel.FAX,
        sender="",
        sender_name=settings.acknowledgement.from_name,
        recipients=[number],
        cc=[],
        references=[],
        subject=ticket.subject,
        date=now,
        received_at=now,
        text=body,
        author_id=user.id,
    )
    message.attachments.append(Attachment(sha256=sha, size=len(pdf),
                                          content_type="application/pdf",
                                          filename=f"{name}.pdf", original_filename=""))
    session.add(message)
    responded(session, ticket, user, now)
    return message, written
