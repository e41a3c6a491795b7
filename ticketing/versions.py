"""A ticket's version as a page saw it, and what changed since: the guard against acting
on a stale view.

Every form of a ticket page carries the version of the ticket the page
showed (``version_of``). A desk action first compares it with the ticket as
it is now (``changes_since``): anything changed — a message came in or went
out, a note, the status, the assignee, flags, contract, a merge — and the
action is refused (``StaleView``) with what changed, so staff read it before
acting again. The version is a token, not a secret: it names the newest
message the page showed, the status and assignee it showed, and a digest of
the rest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from madoguchi.ticketing.actions import ActionError
from madoguchi.ticketing.models import Message, StaffUser, Ticket
from madoguchi.ticketing.rules.marks import N_

_PREVIEW = 80


@dataclass(frozen=True)
class Version:
    last_message_id: int
    status: str
    assignee_id: int
    digest: str

    def encode(self) -> str:
        return f"{self.last_message_id}.{self.status}.{self.assignee_id}.{self.digest}"

    @classmethod
    def decode(cls, token: str) -> Version | None:
        parts = token.strip().split(".")
        if len(parts) != 4 or not parts[0].isdigit() or not parts[2].isdigit():
            return None
        return cls(int(parts[0]), parts[1][:20], int(parts[2]), parts[3][:32])


@dataclass(frozen=True)
class NewMessage:
    id: int
    direction: str  # Direction's value
    channel: str
    at: datetime
    who: str
    preview: str


@dataclass(frozen=True)
class Changes:
    """What changed on a ticket since a page's version; empty: nothing."""

    messages: list[NewMessage] = field(default_factory=list)
    status: tuple[str, str] | None = None  # (before, now)
    assignee: tuple[str | None, str | None] | None = None  # names, None: nobody
    other: bool = False  # flags, contract, customer, merge ...

    def __bool__(self) -> bool:
        return bool(self.messages or self.status or self.assignee or self.other)


class StaleView(ActionError):
    """The action was based on a page older than the ticket: refused, with what changed."""

    def __init__(self, changes: Changes) -> None:
        super().__init__(N_("このチケットは、画面を開いた後に更新されています。"
                            "変更内容を確認してから、もう一度操作してください。"))
        self.changes = changes


def _digest(t: Ticket, messages: int) -> str:
    facts = [messages, t.contract_id, t.customer_id, t.contact_id, t.merged_into_id,
             t.support_number, t.subject, t.closed_at.isoformat() if t.closed_at else None,
             sorted(f.flag.value for f in t.flags)]
    return hashlib.sha256(json.dumps(facts, ensure_ascii=False).encode()).hexdigest()[:16]


def version_of(db: Session, t: Ticket) -> Version:
    if "messages" not in inspect(t).unloaded:
        # The page loaded the thread it shows: its version is of what it drew.
        ids = [m.id for m in t.messages]
        last, count = max(ids, default=0), len(ids)
    else:
        last, count = db.execute(select(func.max(Message.id), func.count(Message.id))
                                 .where(Message.ticket_id == t.id)).one()
    return Version(int(last or 0), t.status.value, t.assignee_id or 0, _digest(t, int(count)))


def _name(db: Session, staff_id: int) -> str | None:
    if not staff_id:
        return None
    user = db.get(StaffUser, staff_id)
    return user.name if user is not None else f"#{staff_id}"


def _new_messages(db: Session, t: Ticket, after: int) -> list[NewMessage]:
    rows = db.scalars(select(Message).where(Message.ticket_id == t.id, Message.id > after)
                      .order_by(Message.id).limit(20))
    found = []
    for m in rows:
        who = _name(db, m.author_id) if m.author_id else None
        if who is None:
            who = m.sender_name or m.sender or ""
        text = " ".join(m.text.split())
        found.append(NewMessage(m.id, m.direction.value, m.channel.value, m.received_at, who,
                                text[:_PREVIEW] + ("…" if len(text) > _PREVIEW else "")))
    return found


def changes_since(db: Session, t: Ticket, token: str) -> Changes:
    """What changed on ``t`` since the version ``token`` (a token that does not read:
    everything may have, said as "other")."""
    seen = Version.decode(token)
    now = version_of(db, t)
    if seen is None:
        return Changes(other=True)
    if seen == now:
        return Changes()
    return Changes(
        messages=_new_messages(db, t, seen.last_message_id)
        if now.last_message_id != seen.last_message_id else [],
        status=(seen.status, now.status) if seen.status != now.status else None,
        assignee=(_name(db, seen.assignee_id), _name(db, now.assignee_id))
        if seen.assignee_id != now.assignee_id else None,
        other=seen.digest != now.digest,
    )


def check(db: Session, t: Ticket, token: str | None) -> None:
    """Raise ``StaleView`` when ``t`` changed since the page's version ``token``.

    ``None``: the caller has no page (the command line), nothing to compare.
    """
    if token is None:
        return
    changes = changes_since(db, t, token)
    if changes:
        raise StaleView(changes)

